"""Nearest neighbours by cosine similarity, with faiss: candidates from a reduced space, re-ranked exactly.

The one place coreclean imports faiss. Rows are L2-normalised and projected onto the top
``search_dims`` directions of their second-moment matrix (an uncentred PCA, which keeps inner
products, fitted on a sample of rows), and re-normalised there. That space gives each sample
``CANDIDATE_FACTOR`` times as many candidates as it needs: exact search up to
``EXACT_SEARCH_LIMIT`` samples, an IVF-PQ fast-scan index beyond (``IVF{4√n},PQ{d/2}x4fsr``:
4-bit codes of the residuals to ``4√n`` k-means lists, 64 lists scanned per query, the best
``REFINE_FACTOR`` × candidates codes re-ranked by their reduced rows). The candidates are then
re-ranked by their exact cosine in the full space (``faiss.fvec_inner_products_by_idx``, a gather
of the candidates' rows) and the best ``n_neighbors`` kept; the similarities returned are
full-space cosines.

Why two stages (issue #13): a search over all the columns is what costs (the exact self-join over
512 columns was 22 of 30 s of a 50k ranking), while the reduced space alone misses neighbours: on
the 50k × 1280 CIFAR-10 MobileNetV2 embeddings, exact search over 256 reduced columns finds only
0.919 of the full-space top 10. Exact search over 128 reduced columns for 40 candidates, re-ranked,
finds 0.999 (``benchmarks.knn_recall``, one thread: 16.7 s); the approximate index 0.954 (0.922 of
the top 20), 14.8 s. The re-rank reads each candidate row once: 0.3 s per 50k samples of 512
columns at 40 candidates (one thread), 17 s per million rows of a memory-mapped matrix.

Why IVF-PQ fast-scan above the exact limit (issue #13; scratch runs, two threads unless said): the
HNSW graph it replaced (16 links, ``efConstruction`` 40, ``efSearch`` 48, same 128 columns and
re-rank) found the same 0.954 on CIFAR-10 in 15.3 s, but took 87.2 s for the neighbours of 200k
synthetic rows at one thread (this index: 43.8 s; the ranking's Spearman to exact neighbours
0.99986, AUROC 0.99037 vs 0.99036) and, at a million rows, 165 s to build and 134 s to search
(this index: 151 s for the whole graph). On the CIFAR-10 features, 1,000 queries: codes of the
residuals (``fsr``) found 0.957 at 64 probes and a refine factor of 4 where codes of the rows
themselves (``fs``) found 0.887 (0.945 at a factor of 8, 3.4 vs 4.0 s); 32 probes: 0.913; a factor
of 2: 0.913. Tried before and not taken: a clustered self-join (two-level k-means into 256-row
clusters, each scored against its 8 nearest by one matrix product) found 0.60 of the exact
neighbours; IVF-Flat (4√n lists, 32 probes) scans n^1.5 floats; faiss NN-descent found 0.910 in
15.4 s at 50k; HNSW over 8-bit codes gained nothing at 200k. The scan still grows with n (64 lists
of √n/4 rows each per query): at a million rows it is most of the 151 s.
Chunks are read once for the projection, so a memory-mapped matrix is never copied whole: the
reduced rows (n × 128 float32, held by the index for the refine step) and the row norms are all
that is held besides the codes. The index's training, filling and search run on every free core
(:func:`coreclean._internal.threads.limit_graph_search_threads`).
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from coreclean._internal.blocks import BlockRunner, LocalBlocks
from coreclean._internal.threads import limit_graph_search_threads
from coreclean.exceptions import InputValidationError

__all__ = ["knn_graph", "shard_count", "shard_bytes", "search_block", "probe_block", "fill_shard_block",
           "candidates_block", "rerank_block", "EXACT_SEARCH_LIMIT", "SEARCH_DIMS", "CANDIDATE_FACTOR"]

logger = logging.getLogger(__name__)

#: Above this many samples, an IVF-PQ fast-scan index (approximate) replaces the exact flat index.
EXACT_SEARCH_LIMIT = 20_000
#: Columns of the space the candidates are searched in (fewer columns: searched as they are).
SEARCH_DIMS = 128
#: Candidates searched per neighbour kept; the candidates are re-ranked by their full-space cosine.
CANDIDATE_FACTOR = 2
#: Inverted lists of the approximate index per square root of the sample count (faiss's guide: 4 to 16).
IVF_LISTS_PER_ROOT = 4
#: Lists each query scans.
IVF_PROBES = 64
#: Codes ranked per candidate, then re-ranked by their reduced-space rows (``IndexRefineFlat``'s ``k_factor``).
REFINE_FACTOR = 4
_TRAINING_ROWS_PER_LIST = 32
_MIN_APPROXIMATE_ROWS = 256
_CHUNK_ROWS = 16384
_MIN_SHARD_ROWS = 1024
_SHARD_HEADER_BYTES = 65536  # a serialised index's headers and codebooks, at most (measured: under 20 kB)
_BASIS_ROWS = 32768


def _normalized(block: np.ndarray) -> np.ndarray:
    block = np.array(block, dtype=np.float32, copy=True)
    block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
    return block


def reduced_rows(features: np.ndarray, n_dims: int, *, random_state: int = 0) -> np.ndarray:
    """Unit rows of ``features`` projected on their top ``n_dims`` second-moment directions and re-normalised.

    Returns a new float32 array of shape (n_samples, min(n_dims, n_features)); with no more columns
    than ``n_dims``, the unit rows themselves. The directions come from at most 32,768 sampled rows.
    """
    return _reduced_rows_and_norms(features, n_dims, random_state=random_state)[0]


def _reduced_rows_and_norms(features: np.ndarray, n_dims: int, *, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reduced_rows` and the full-space L2 norm of every row (float32, at least 1e-12), in one pass."""
    basis = _projection_basis(features, n_dims, random_state=random_state)
    n_samples, n_features = features.shape
    out = np.empty((n_samples, n_dims if basis is not None else n_features), dtype=np.float32)
    norms = np.empty(n_samples, dtype=np.float32)
    for start, reduced, block_norms in _reduced_chunks(features, basis, 0, n_samples):
        out[start : start + reduced.shape[0]], norms[start : start + reduced.shape[0]] = reduced, block_norms
    return out, norms


def _reduced_chunks(features: np.ndarray, basis: np.ndarray | None, start: int, stop: int):
    """Rows ``start:stop`` read once, chunk by chunk: yields ``(first row, reduced rows, full-space norms)``,
    the norms at least 1e-12 (float32)."""
    for first in range(start, stop, _CHUNK_ROWS):
        block = np.asarray(features[first : min(first + _CHUNK_ROWS, stop)], dtype=np.float32)
        yield first, _project(block, basis), np.maximum(np.linalg.norm(block, axis=1), 1e-12)


def _projection_basis(features: np.ndarray, n_dims: int, *, random_state: int) -> np.ndarray | None:
    """Top ``n_dims`` second-moment directions of at most 32,768 sampled unit rows (float32, columns), or
    None when the rows have no more than ``n_dims`` columns (they are searched as they are)."""
    n_samples, n_features = features.shape
    if n_features <= n_dims:
        return None
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(n_samples, size=min(n_samples, _BASIS_ROWS), replace=False))
    unit = _normalized(features[sample]).astype(np.float64)
    _, vectors = np.linalg.eigh(unit.T @ unit)
    return np.ascontiguousarray(vectors[:, ::-1][:, :n_dims], dtype=np.float32)


def _project(block: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """Rows of ``block`` projected on ``basis`` (None: as they are) and normalised; a new float32 array."""
    block = np.asarray(block, dtype=np.float32)
    # Scaling a row before the projection does not change it after re-normalising: project the raw rows.
    block = block @ basis if basis is not None else np.array(block, copy=True)
    block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
    return block


def _n_codes(n_dims: int) -> int:
    """Sub-quantizers of the 4-bit codes: one per pair of columns (one per column when their count is odd)."""
    return n_dims // 2 if n_dims % 2 == 0 else n_dims


def _n_lists(n_samples: int) -> int:
    return max(1, min(round(IVF_LISTS_PER_ROOT * np.sqrt(n_samples)), n_samples // _TRAINING_ROWS_PER_LIST))


def _training_rows(n_samples: int, random_state: int) -> np.ndarray:
    """Sorted row numbers the approximate index is trained on: 32 per inverted list."""
    rng = np.random.default_rng(random_state)
    size = min(n_samples, _TRAINING_ROWS_PER_LIST * _n_lists(n_samples))
    return np.sort(rng.choice(n_samples, size=size, replace=False))


def _index(n_samples: int, n_dims: int, approximate: bool, training: np.ndarray | None):
    """The empty index the candidates among ``n_samples`` rows are searched in; the approximate one is trained
    on the reduced rows ``training`` (:func:`_training_rows`)."""
    import faiss

    if not approximate:
        return faiss.IndexFlatIP(n_dims)
    n_lists = _n_lists(n_samples)
    # 4-bit codes of the residuals.
    base = faiss.index_factory(n_dims, f"IVF{n_lists},PQ{_n_codes(n_dims)}x4fsr", faiss.METRIC_INNER_PRODUCT)
    base.cp.min_points_per_centroid = base.pq.cp.min_points_per_centroid = 1  # the sample is sized
    base.nprobe = min(IVF_PROBES, n_lists)
    base.train(training)
    index = faiss.IndexRefineFlat(base)
    index.k_factor = REFINE_FACTOR
    logger.info("kNN: IVF-PQ fast-scan index over %d samples (%d lists, %d probed; approximate)", n_samples,
                n_lists, base.nprobe)
    return index


def _approximate(n_samples: int, exact_limit: int) -> bool:
    """Whether the candidates come from the approximate index (else: exact search)."""
    return n_samples > max(exact_limit, _MIN_APPROXIMATE_ROWS)


def knn_graph(
    features: np.ndarray,
    n_neighbors: int,
    *,
    exact_limit: int = EXACT_SEARCH_LIMIT,
    search_dims: int = SEARCH_DIMS,
    random_state: int = 0,
    runner: BlockRunner | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return each sample's ``n_neighbors`` most cosine-similar other samples.

    Candidates come from the reduced space, ``CANDIDATE_FACTOR`` per neighbour; the best of them by
    full-space cosine are returned (see the module docstring).

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        Finite float32 rows (a memmap is fine; another dtype is converted, a copy of the matrix).
    n_neighbors : int
        Neighbours per sample, the sample itself excluded. Clipped to ``n_samples - 1``.
    exact_limit : int
        Exact candidate search (faiss ``IndexFlatIP``) up to this many samples (and always below
        256); above it, an IVF-PQ fast-scan index (``IVF{4√n},PQ{d/2}x4fsr``, 64 lists probed,
        trained on 32 sampled rows per list) whose 4 × candidates codes are re-ranked by their
        reduced rows (``IndexRefineFlat``).
    search_dims : int
        Columns of the candidates' search space (see the module docstring); at least 1.
    random_state : int
        Seed of the row samples the projection and the approximate index are trained on.
    runner : BlockRunner, optional
        Runs the search and re-rank in row blocks (default: here, one block); the index is built here.
        Where its ``max_index_bytes`` is set, the index is cut into shards that hold at most that
        much each (runs of the approximate index's inverted lists; consecutive rows of the exact
        one), filled by the runner's tasks (one per shard, trained here) and searched one pass per
        shard, so neither a task nor the driver holds the whole index.

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), int64
        Neighbour row numbers, most similar first; -1 where fewer neighbours exist.
    similarities : ndarray of shape (n_samples, n_neighbors), float32
        Full-space cosine similarities matching ``indices`` (0 where the index is -1).
    """
    n_samples = features.shape[0]
    k = max(0, min(n_neighbors, n_samples - 1))
    indices = np.full((n_samples, k), -1, dtype=np.int64)
    similarities = np.zeros((n_samples, k), dtype=np.float32)
    if k == 0:
        return indices, similarities

    if features.dtype != np.float32 or not features.flags.c_contiguous:
        features = np.ascontiguousarray(features, dtype=np.float32)
    n_candidates = min(CANDIDATE_FACTOR * k, n_samples - 1)
    runner = runner if runner is not None else LocalBlocks()
    approximate = _approximate(n_samples, exact_limit)
    n_dims = min(max(1, int(search_dims)), features.shape[1])  # columns searched
    n_shards = shard_count(n_samples, getattr(runner, "max_index_bytes", None), n_dims=n_dims, approximate=approximate)
    # The index's training, filling and (here) search are long OpenMP regions: they get every free core.
    threads = limit_graph_search_threads(n_samples, n_dims) if approximate else contextlib.nullcontext()
    with threads:
        if n_shards > 1:
            found = _sharded_graph(features, runner, n_shards=n_shards, n_dims=n_dims,
                                   approximate=approximate, n_candidates=n_candidates, k=k, random_state=random_state)
        else:
            found = _one_index_graph(features, runner, n_dims=n_dims, approximate=approximate,
                                     n_candidates=n_candidates, k=k, random_state=random_state)
        for start, stop, block_indices, block_similarities in found:
            indices[start:stop], similarities[start:stop] = block_indices, block_similarities
    similarities[indices < 0] = 0.0
    return indices, similarities


def _one_index_graph(features: np.ndarray, runner: BlockRunner, *, n_dims: int, approximate: bool, n_candidates: int,
                     k: int, random_state: int) -> list:
    """Search and re-rank against one index over every row, in one pass (:func:`search_block`)."""
    import faiss

    n_samples = features.shape[0]
    reduced, norms = _reduced_rows_and_norms(features, n_dims, random_state=random_state)
    training = reduced[_training_rows(n_samples, random_state)] if approximate else None
    index = _index(n_samples, reduced.shape[1], approximate, training)
    index.add(reduced)
    del reduced  # the index holds the rows; a search block reads its queries back from it
    shared = index if getattr(runner, "in_process", False) else faiss.serialize_index(index)
    return runner.map(search_block, features, runner.blocks(n_samples), shared=(shared, norms, n_candidates, k))


def shard_count(n_samples: int, max_index_bytes: int | None, *, n_dims: int = SEARCH_DIMS,
                approximate: bool = True) -> int:
    """Shards the index over ``n_samples`` rows is cut into so that none holds more than ``max_index_bytes``
    (:func:`shard_bytes`), were its rows spread evenly; 1 when None. (Shards of inverted lists hold
    whole lists, so :func:`knn_graph` may need one or two more.)

    Raises
    ------
    InputValidationError
        When the limit cannot hold a shard of 1,024 rows (or of every row, if fewer); the message
        gives the bytes that can.
    """
    if max_index_bytes is None:
        return 1
    return max(1, -(-n_samples // _rows_per_shard(n_samples, max_index_bytes, n_dims=n_dims, approximate=approximate)))


def _rows_per_shard(n_samples: int, max_index_bytes: int, *, n_dims: int, approximate: bool) -> int:
    """Most rows a shard within ``max_index_bytes`` holds (see :func:`shard_count` for the error)."""
    fixed = shard_bytes(n_samples, 0, n_dims=n_dims, approximate=approximate)
    per_row = shard_bytes(n_samples, 1, n_dims=n_dims, approximate=approximate) - fixed
    rows_per_shard = (int(max_index_bytes) - fixed) // per_row
    if rows_per_shard < min(n_samples, _MIN_SHARD_ROWS):
        raise InputValidationError(
            f"max_index_bytes={max_index_bytes} cannot hold a useful shard of the neighbour index over {n_samples} "
            f"rows of {n_dims} columns; give at least {fixed + per_row * min(n_samples, _MIN_SHARD_ROWS)} bytes.")
    return int(rows_per_shard)


def shard_bytes(n_samples: int, shard_rows: int, *, n_dims: int = SEARCH_DIMS, approximate: bool = True) -> int:
    """Most bytes a shard of ``shard_rows`` rows of the index over ``n_samples`` rows holds.

    Per row, its reduced row (the refine step's, or the flat index's), its 8-byte row number and,
    when approximate, its 4-bit code and its 8-byte id in the index; every approximate shard also
    holds the coarse centroids and, at worst, 31 padding codes per inverted list (fast-scan stores
    codes in blocks of 32), plus headers.
    """
    code_bytes = -(-_n_codes(n_dims) // 2)
    per_row = 4 * n_dims + 8 + (code_bytes + 8 if approximate else 0)
    fixed = _n_lists(n_samples) * (4 * n_dims + 32 * code_bytes) + _SHARD_HEADER_BYTES if approximate else 0
    return fixed + per_row * int(shard_rows)


def _sharded_graph(features: np.ndarray, runner: BlockRunner, *,
                   n_shards: int, n_dims: int, approximate: bool, n_candidates: int, k: int, random_state: int
                   ) -> list:
    """Candidates from ``n_shards`` indexes, each over part of the rows, merged, then re-ranked.

    One empty index is trained here. The approximate index is cut by its inverted lists: one pass of
    :func:`probe_block` finds every row's 64 nearest lists (the coarse search, done once), each
    shard takes a run of consecutive lists holding about ``n / n_shards`` rows (each row's nearest
    list is where the index files it), and a query's scan of its 64 lists is divided among the
    shards, so the search costs about what one index's does whatever the shard count. (Shards of
    consecutive rows made every shard repeat the coarse search and the 64 probes: 4 shards searched
    2.5x as long as one index at 1M rows, issue #16.) The exact index is cut by consecutive rows.

    The shards are filled in one pass of :func:`fill_shard_block`, a task per shard, and stay where
    they were made (a Ray cluster's object store: the driver never holds them; the runner's
    ``info["index_shard_bytes"]`` records each one's size). Each shard is then one pass of
    :func:`candidates_block` over every row block, so a task holds one shard; the candidates are
    merged by their reduced-space similarity (the refine step's exact one, the same scale in every
    shard) and re-ranked by :func:`rerank_block`. The driver holds, per row, its probes (256 bytes)
    and its merged candidates (12 bytes each), never a shard.
    """
    import faiss

    n_samples = features.shape[0]
    basis = _projection_basis(features, n_dims, random_state=random_state)
    training = _project(features[_training_rows(n_samples, random_state)], basis) if approximate else None
    empty = _index(n_samples, n_dims, approximate, training)
    in_process = getattr(runner, "in_process", False)
    blocks = runner.blocks(n_samples)
    capacity = _rows_per_shard(n_samples, runner.max_index_bytes, n_dims=n_dims, approximate=approximate)
    if approximate:
        quantizer = faiss.downcast_index(empty.base_index).quantizer
        probes = np.concatenate([found for _, _, found in runner.map(
            probe_block, features, blocks,
            shared=(quantizer if in_process else faiss.serialize_index(quantizer), basis,
                    faiss.downcast_index(empty.base_index).nprobe))])
        shard_rows = _list_shards(probes[:, 0], quantizer.ntotal, n_shards, capacity)
    else:
        probes = None
        per_shard = -(-n_samples // n_shards)
        shard_rows = [np.arange(first, min(first + per_shard, n_samples)) for first in range(0, n_samples, per_shard)]
    bounds = np.cumsum([0] + [len(rows) for rows in shard_rows])
    logger.info("kNN: the index is cut into %d shards of %d to %d rows", len(shard_rows),
                min(map(len, shard_rows)), max(map(len, shard_rows)))
    shards = runner.map(fill_shard_block, features, list(zip(bounds[:-1], bounds[1:])),
                        per_block=[(rows,) for rows in shard_rows],
                        shared=(empty if in_process else faiss.serialize_index(empty), basis), keep=True)
    runner.info["index_shard_bytes"] = list(runner.info["passes"][-1]["result_bytes"])
    del empty, shard_rows
    n_found = n_candidates + 1
    best_ids = np.full((n_samples, n_found), -1, dtype=np.int64)
    best_sims = np.full((n_samples, n_found), -np.inf, dtype=np.float32)
    norms = np.empty(n_samples, dtype=np.float32)
    per_block = [(None if probes is None else probes[start:stop],) for start, stop in blocks]
    for shard in shards:
        # Here, the shard is read once for all blocks; a task reads its serialised copy.
        shared = (faiss.deserialize_index(shard[0]), shard[1]) if in_process else shard
        for start, stop, sims, ids, block_norms in runner.map(candidates_block, features, blocks, per_block=per_block,
                                                              shared=(shared, basis, n_found, len(shards))):
            merged_sims = np.concatenate([best_sims[start:stop], sims], axis=1)
            merged_ids = np.concatenate([best_ids[start:stop], ids], axis=1)
            top = np.argsort(-merged_sims, axis=1, kind="stable")[:, :n_found]
            best_sims[start:stop] = np.take_along_axis(merged_sims, top, axis=1)
            best_ids[start:stop] = np.take_along_axis(merged_ids, top, axis=1)
            norms[start:stop] = block_norms
        del shared
    del shards, probes
    per_block = [(best_ids[start:stop],) for start, stop in blocks]
    return runner.map(rerank_block, features, blocks, per_block=per_block, shared=(norms, n_candidates, k))


def _list_shards(nearest_list: np.ndarray, n_lists: int, n_shards: int, capacity: int) -> list[np.ndarray]:
    """Sorted row numbers of each shard: runs of consecutive inverted lists, about equal in rows, none over
    ``capacity`` rows (more shards than ``n_shards`` where whole lists need them). ``nearest_list``: each row's list."""
    sizes = np.bincount(nearest_list, minlength=n_lists)
    if sizes.max() > capacity:
        raise InputValidationError(
            f"an inverted list of the neighbour index holds {int(sizes.max())} rows, more than a shard's {capacity}; "
            "raise max_index_bytes.")
    ends = np.cumsum(sizes)
    for count in range(n_shards, n_shards + 8):
        # Cut at the lists where the running row count passes each multiple of n / count.
        cuts = np.searchsorted(ends, np.arange(1, count) * (ends[-1] / count), side="left") + 1
        first_lists = np.unique(np.concatenate([[0], cuts, [n_lists]]))
        shard_of_list = np.repeat(np.arange(len(first_lists) - 1), np.diff(first_lists))
        if np.bincount(shard_of_list, weights=sizes).max() <= capacity:
            break
    else:  # lists too uneven for even cuts: fill each shard up to its capacity
        shard_of_list, shard, held = np.empty(n_lists, dtype=np.int64), 0, 0
        for position, size in enumerate(sizes):
            if held + size > capacity:
                shard, held = shard + 1, 0
            shard_of_list[position], held = shard, held + size
    shard_of_row = shard_of_list[nearest_list]
    order = np.argsort(shard_of_row, kind="stable")
    return [rows for rows in np.split(order, np.cumsum(np.bincount(shard_of_row))[:-1]) if len(rows)]


def probe_block(features: np.ndarray, start: int, stop: int, quantizer, basis: np.ndarray | None,
                n_probes: int) -> tuple[int, int, np.ndarray]:
    """The ``n_probes`` inverted lists nearest to each of rows ``start:stop`` (projected on ``basis``), nearest
    first: ``(start, stop, lists)``, int32. ``quantizer``: the index of the lists' centroids, or its serialised bytes."""
    import faiss

    if isinstance(quantizer, np.ndarray):
        quantizer = faiss.deserialize_index(quantizer)
    lists = np.empty((stop - start, n_probes), dtype=np.int32)
    for chunk, queries, _ in _reduced_chunks(features, basis, start, stop):
        lists[chunk - start:chunk - start + queries.shape[0]] = quantizer.search(queries, n_probes)[1]
    return start, stop, lists


def fill_shard_block(features: np.ndarray, start: int, stop: int, rows: np.ndarray, empty,
                     basis: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The shard of the index over ``rows`` (sorted row numbers; ``start:stop`` their place among every shard's):
    a copy of the trained ``empty`` index (or its serialised bytes) filled with those rows projected
    on ``basis``. Returns ``(the filled index serialised (uint8), rows)``."""
    import faiss

    shard = faiss.deserialize_index(empty) if isinstance(empty, np.ndarray) else _empty_copy(empty)
    for first in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[first:first + _CHUNK_ROWS]
        block = features[chunk[0]:chunk[-1] + 1] if chunk[-1] - chunk[0] + 1 == len(chunk) else features[chunk]
        shard.add(_project(block, basis))
    return faiss.serialize_index(shard), np.asarray(rows, dtype=np.int64)


def _empty_copy(index):
    """A copy of the trained empty ``index`` with its search settings (``faiss.clone_index`` drops some)."""
    import faiss

    copy = faiss.clone_index(index)
    if isinstance(index, faiss.IndexRefineFlat):
        copy.k_factor = index.k_factor
        faiss.downcast_index(copy.base_index).nprobe = faiss.downcast_index(index.base_index).nprobe
    return copy


def candidates_block(features: np.ndarray, start: int, stop: int, probes: np.ndarray | None, shard,
                     basis: np.ndarray | None, n_found: int, n_shards: int = 1
                     ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of rows ``start:stop`` in one shard: ``(start, stop, similarities, row numbers, norms)``.

    ``shard`` is :func:`fill_shard_block`'s ``(index, rows)`` (the index as a faiss index or its
    serialised bytes); the queries are the rows of ``features`` projected on ``basis``. An
    approximate index scans, of each query's ``probes`` (its nearest inverted lists, from
    :func:`probe_block`), those the shard holds rows of, and its best codes there (one index's
    ``REFINE_FACTOR`` × ``n_found``, shared among ``n_shards``: :func:`_shard_codes`) are re-ranked
    by their reduced rows; an exact one (``probes`` None) is searched
    whole. Returns ``n_found`` per row, most similar first by reduced-space similarity; -1 and -inf
    where the shard has fewer; and each row's full-space L2 norm (at least 1e-12), read in the same pass.
    """
    import faiss
    from faiss.contrib.inspect_tools import get_invlist_sizes

    index, rows = shard
    if isinstance(index, np.ndarray):
        index = faiss.deserialize_index(index)
    sims = np.empty((stop - start, n_found), dtype=np.float32)
    ids = np.empty((stop - start, n_found), dtype=np.int64)
    norms = np.empty(stop - start, dtype=np.float32)
    if probes is not None:
        ivf = faiss.downcast_index(index.base_index)
        held = get_invlist_sizes(ivf.invlists) > 0  # a list's rows are in the shard of its nearest rows
        held_centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)[held]
        column = np.full(ivf.nlist, -1, dtype=np.int64)
        column[held] = np.arange(held_centroids.shape[0])
        n_codes = min(_shard_codes(int(index.k_factor) * n_found, n_found, n_shards), index.ntotal)
    for chunk, queries, chunk_norms in _reduced_chunks(features, basis, start, stop):
        end = chunk + queries.shape[0]
        if probes is None:
            found_sims, found = index.search(queries, n_found)
        else:
            lists = probes[chunk - start:end - start].astype(np.int64)
            lists[~held[lists]] = -1
            coarse = _coarse_similarities(queries, held_centroids, column, lists)
            found = ivf.search_preassigned(queries, n_codes, lists, coarse)[1]
            found_sims, found = _refined(index.refine_index, queries, found, n_found)
        missing = found < 0
        sims[chunk - start:end - start] = np.where(missing, -np.inf, found_sims)
        ids[chunk - start:end - start] = np.where(missing, -1, rows[np.maximum(found, 0)])
        norms[chunk - start:end - start] = chunk_norms
    return start, stop, sims, ids, norms


def _shard_codes(n_codes: int, n_found: int, n_shards: int) -> int:
    """Codes one of ``n_shards`` shards of inverted lists re-ranks per query, where one index re-ranks ``n_codes``.

    Of one index's best ``n_codes`` codes a shard holds n_codes / S on average (binomially spread):
    twice that, and never fewer than the ``n_found`` it returns, leaves out some of them only far
    in the tail, and the shards together still re-rank at least as many codes as one index.
    """
    return min(n_codes, max(n_found, -(-2 * n_codes // n_shards)))


def _refined(refine_index, queries: np.ndarray, found: np.ndarray, n_found: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``n_found`` of ``found`` (ids in ``refine_index``, a flat inner-product index; -1 where missing) by
    their exact similarity to ``queries``, most similar first: ``(similarities, ids)``, -inf and -1 where missing."""
    import faiss

    if found.shape[1] < n_found:
        found = np.pad(found, ((0, 0), (0, n_found - found.shape[1])), constant_values=-1)
    labels = np.ascontiguousarray(np.maximum(found, 0))
    queries = np.ascontiguousarray(queries)
    exact = np.empty(found.shape, dtype=np.float32)
    faiss.downcast_index(refine_index).compute_distance_subset(
        queries.shape[0], faiss.swig_ptr(queries), found.shape[1], faiss.swig_ptr(exact), faiss.swig_ptr(labels))
    exact[found < 0] = -np.inf
    best = np.argsort(-exact, axis=1, kind="stable")[:, :n_found]
    best_sims = np.take_along_axis(exact, best, axis=1)
    return best_sims, np.where(best_sims > -np.inf, np.take_along_axis(found, best, axis=1), -1)


def _coarse_similarities(queries: np.ndarray, held_centroids: np.ndarray, column: np.ndarray,
                         lists: np.ndarray) -> np.ndarray:
    """Each query's inner product with the centroids of its ``lists`` (any value where a list is -1), float32.

    ``held_centroids`` are the centroids of the lists a shard holds and ``column`` each list's row
    among them: one matrix product with those (about 1/S of all), which costs less than gathering
    64 centroids per query.
    """
    products = queries @ held_centroids.T
    return np.take_along_axis(products, np.maximum(column[np.maximum(lists, 0)], 0), axis=1)


def search_block(features: np.ndarray, start: int, stop: int, index, norms: np.ndarray, n_candidates: int,
                 k: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Neighbours of rows ``start:stop``, themselves excluded: ``(start, stop, indices, similarities)``.

    ``index`` is the faiss index over every reduced row, or its ``faiss.serialize_index`` bytes (how
    it travels to another process); it gives ``n_candidates`` per row, which are re-ranked by their
    cosine in ``features`` (every row of the matrix, float32; ``norms`` its row norms). Returns the
    best ``k``, most similar first; -1 and similarity -inf where fewer candidates were found.
    """
    import faiss

    if isinstance(index, np.ndarray):
        index = faiss.deserialize_index(index)
    found = np.empty((stop - start, n_candidates + 1), dtype=np.int64)
    for chunk in range(start, stop, _CHUNK_ROWS):
        end = min(chunk + _CHUNK_ROWS, stop)
        found[chunk - start:end - start] = index.search(index.reconstruct_n(chunk, end - chunk), n_candidates + 1)[1]
    return rerank_block(features, start, stop, found, norms, n_candidates, k)


def rerank_block(features: np.ndarray, start: int, stop: int, found: np.ndarray, norms: np.ndarray, n_candidates: int,
                 k: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The best ``k`` of rows ``start:stop``'s candidates by full-space cosine: ``(start, stop, indices, similarities)``.

    ``found`` holds ``n_candidates + 1`` row numbers per row (-1 where missing), among them usually
    the row itself: it is dropped, or the last candidate where it is absent (exact duplicates).
    ``features`` is every row of the matrix (float32), ``norms`` its row norms. Most similar first;
    -1 and similarity -inf where fewer candidates were found.
    """
    import faiss

    database = np.ascontiguousarray(features, dtype=np.float32)
    indices = np.empty((stop - start, k), dtype=np.int64)
    similarities = np.empty((stop - start, k), dtype=np.float32)
    for chunk in range(start, stop, _CHUNK_ROWS):
        end = min(chunk + _CHUNK_ROWS, stop)
        hits = found[chunk - start:end - start]
        own = np.arange(chunk, end)[:, None]
        is_self = hits == own
        # Drop the sample itself; where it was not returned (exact duplicates), drop the last hit.
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), n_candidates)
        keep = np.ones_like(hits, dtype=bool)
        keep[np.arange(end - chunk), drop] = False
        hits = hits[keep].reshape(end - chunk, n_candidates)
        missing = hits < 0
        candidates = np.ascontiguousarray(np.where(missing, own, hits))  # a missing one reads a valid row; masked
        queries = np.ascontiguousarray(database[chunk:end])
        products = np.empty(candidates.shape, dtype=np.float32)
        faiss.fvec_inner_products_by_idx(faiss.swig_ptr(products), faiss.swig_ptr(queries), faiss.swig_ptr(database),
                                         faiss.swig_ptr(candidates), database.shape[1], end - chunk, n_candidates)
        cosines = products / (norms[chunk:end, None] * norms[candidates])
        cosines[missing] = -np.inf
        best = np.argsort(-cosines, axis=1, kind="stable")[:, :k]
        indices[chunk - start:end - start] = np.take_along_axis(hits, best, axis=1)
        similarities[chunk - start:end - start] = np.take_along_axis(cosines, best, axis=1)
    return start, stop, indices, similarities
