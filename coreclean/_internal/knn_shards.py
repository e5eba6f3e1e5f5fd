"""The neighbour index cut into shards that each task can hold (issue #16; see :mod:`coreclean._internal.knn`).

The approximate index is cut by its inverted lists, the exact one by consecutive rows; the shards
are filled by the runner's tasks, searched one pass each, merged, and re-ranked.
"""

from __future__ import annotations

import logging

import numpy as np

from coreclean._internal.blocks import BlockRunner
from coreclean._internal.knn_index import (_CHUNK_ROWS, _MIN_SHARD_ROWS, _SHARD_HEADER_BYTES, SEARCH_DIMS, _index,
                                           _n_codes, _n_lists, _project, _projection_basis, _reduced_chunks,
                                           _training_rows, most_similar, rerank_block)
from coreclean.exceptions import InputValidationError

__all__ = ["shard_count", "shard_bytes", "sharded_graph", "probe_block", "fill_shard_block", "candidates_block"]

logger = logging.getLogger(__name__)


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


def sharded_graph(features: np.ndarray, runner: BlockRunner, *,
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
            best_sims[start:stop], best_ids[start:stop] = most_similar(
                np.concatenate([best_sims[start:stop], sims], axis=1),
                np.concatenate([best_ids[start:stop], ids], axis=1), n_found)
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
    exact[found < 0] = -np.inf  # so exactly the missing ones (-1) rank last
    return most_similar(exact, found, n_found)


def _coarse_similarities(queries: np.ndarray, held_centroids: np.ndarray, column: np.ndarray,
                         lists: np.ndarray) -> np.ndarray:
    """Each query's inner product with the centroids of its ``lists`` (any value where a list is -1), float32.

    ``held_centroids`` are the centroids of the lists a shard holds and ``column`` each list's row
    among them: one matrix product with those (about 1/S of all), which costs less than gathering
    64 centroids per query.
    """
    products = queries @ held_centroids.T
    return np.take_along_axis(products, np.maximum(column[np.maximum(lists, 0)], 0), axis=1)
