"""Nearest neighbours by cosine similarity, with faiss: candidates from a reduced space, re-ranked exactly.

The one place coreclean imports faiss. Rows are L2-normalised and projected onto the top
``search_dims`` directions of their second-moment matrix (an uncentred PCA, which keeps inner
products, fitted on a sample of rows), and re-normalised there. That space gives each sample
``CANDIDATE_FACTOR`` times as many candidates as it needs: exact search up to
``EXACT_SEARCH_LIMIT`` samples, an HNSW graph beyond. The candidates are then re-ranked by their
exact cosine in the full space (``faiss.fvec_inner_products_by_idx``, a gather of the candidates'
rows) and the best ``n_neighbors`` kept; the similarities returned are full-space cosines.

Why two stages (issue #13): a search over all the columns is what costs (the exact self-join over
512 columns was 22 of 30 s of a 50k ranking; on the 50k × 1280 CIFAR-10 MobileNetV2 embeddings,
two threads, HNSW over 1,024 reduced columns built and searched in 16.6 s against 7.6 s over 256),
while the reduced space alone misses neighbours: on those embeddings,
exact search over 256 reduced columns finds only 0.919 of the full-space top 10, and the HNSW graph
over them 0.885. Searching 128 reduced columns for 40 candidates and re-ranking them finds 0.954
(recall@10; 0.926 of the top 20), at 13.7 s against 15.8 s for the HNSW graph over 256 columns
(one run each, same process); at 200k synthetic rows, one thread, 92.8 s against 114.0 s. The
CIFAR-10N default-ranker AUROC (seed 0) moves from 0.9248 to 0.9251 (aggre) and stays 0.9415
(random1). The re-rank reads each candidate row once: 0.3 s per 50k samples of 512 columns at 40 candidates
(one thread, random candidates).

Tried and not taken (issue #13, scratch runs not committed; CIFAR-10N aggre on the 50k MobileNetV2 features, seed 0, AUROC of the
default ranking; the HNSW graph over 256 reduced columns without re-ranking: 0.9202, exact search: 0.9211): a clustered self-join (two-level
k-means into 256-row clusters, each cluster's rows scored against its 8 nearest clusters by one
matrix product) built the graph in 6.6 s at 200k rows (HNSW: ~100 s) but found 0.60 of the exact neighbours and
ranked at 0.9153 (0.9192 with 32 clusters, as slow as HNSW); IVF-Flat (4√n lists, 32 probes) ranked
at 0.9199 at 50k but its scan grows as n^1.5; faiss NN-descent (the kNN graph built directly, 32
neighbours, pool 48) found 0.910 of the top 10 in 15.4 s at 50k, slower than HNSW and re-ranking;
HNSW over 8-bit scalar codes (``IndexHNSWSQ``) kept recall@10 at 0.954 and took 15.0 vs 17.7 s at
50k CIFAR, but 85.7 / 87.9 s vs 83.9 / 89.4 s at 200k synthetic rows (one thread, interleaved): no
gain where the time is; ``efConstruction`` 20 cost 0.010 of recall@10 for about 15% at 50k.
Chunks are read once for the projection, so a memory-mapped matrix is never copied whole: the
reduced rows (n × 128 float32) and the row norms are all that is held besides the index. The
graph's build and search run on every free core
(:func:`coreclean._internal.threads.limit_graph_search_threads`).
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from coreclean._internal.blocks import BlockRunner, LocalBlocks
from coreclean._internal.threads import limit_graph_search_threads

__all__ = ["knn_graph", "search_block", "EXACT_SEARCH_LIMIT", "SEARCH_DIMS", "CANDIDATE_FACTOR"]

logger = logging.getLogger(__name__)

#: Above this many samples, an HNSW graph (approximate) replaces the exact flat index.
EXACT_SEARCH_LIMIT = 20_000
#: Columns of the space the candidates are searched in (fewer columns: searched as they are).
SEARCH_DIMS = 128
#: Candidates searched per neighbour kept; the candidates are re-ranked by their full-space cosine.
CANDIDATE_FACTOR = 2
#: Links per node of the HNSW graph that replaces exact search above ``EXACT_SEARCH_LIMIT``.
HNSW_LINKS = 16
#: Candidates HNSW keeps while searching (``efSearch``).
HNSW_SEARCH_DEPTH = 48
_CHUNK_ROWS = 16384
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
    n_samples, n_features = features.shape
    basis = None
    if n_features > n_dims:
        rng = np.random.default_rng(random_state)
        sample = np.sort(rng.choice(n_samples, size=min(n_samples, _BASIS_ROWS), replace=False))
        unit = _normalized(features[sample]).astype(np.float64)
        _, vectors = np.linalg.eigh(unit.T @ unit)
        basis = np.ascontiguousarray(vectors[:, ::-1][:, :n_dims], dtype=np.float32)
    out = np.empty((n_samples, n_dims if basis is not None else n_features), dtype=np.float32)
    norms = np.empty(n_samples, dtype=np.float32)
    for start in range(0, n_samples, _CHUNK_ROWS):
        block = np.asarray(features[start : start + _CHUNK_ROWS], dtype=np.float32)
        norms[start : start + block.shape[0]] = np.linalg.norm(block, axis=1)
        # Scaling a row before the projection does not change it after re-normalising: project the raw rows.
        block = block @ basis if basis is not None else np.array(block, copy=True)
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        out[start : start + block.shape[0]] = block
    return out, np.maximum(norms, 1e-12)


def _index(n_samples: int, n_dims: int, exact_limit: int, n_candidates: int):
    import faiss

    if n_samples <= exact_limit:
        return faiss.IndexFlatIP(n_dims)
    index = faiss.IndexHNSWFlat(n_dims, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 40
    index.hnsw.efSearch = max(HNSW_SEARCH_DEPTH, n_candidates + 1)
    logger.info("kNN: HNSW graph over %d samples (approximate)", n_samples)
    return index


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
        Exact candidate search (faiss ``IndexFlatIP``) up to this many samples; above it, an HNSW
        graph (``IndexHNSWFlat``, 16 links, ``efConstruction`` 40, ``efSearch`` 48 or the candidates + 1).
    search_dims : int
        Columns of the candidates' search space (see the module docstring); at least 1.
    random_state : int
        Seed of the row sample the projection is fitted on.
    runner : BlockRunner, optional
        Runs the search and re-rank in row blocks (default: here, one block); the index is built here.

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
    reduced, norms = _reduced_rows_and_norms(features, max(1, int(search_dims)), random_state=random_state)
    n_candidates = min(CANDIDATE_FACTOR * k, n_samples - 1)
    runner = runner if runner is not None else LocalBlocks()
    in_process = getattr(runner, "in_process", False)
    graph = n_samples > exact_limit
    # The graph's build and (here) search are long OpenMP regions: they get every free core.
    threads = (limit_graph_search_threads(n_samples, reduced.shape[1]) if graph
               else contextlib.nullcontext())
    import faiss

    with threads:
        index = _index(n_samples, reduced.shape[1], exact_limit, n_candidates)
        index.add(reduced)
        del reduced  # the index holds the rows; a search block reads its queries back from it
        shared = index if in_process else faiss.serialize_index(index)
        blocks = runner.blocks(n_samples)
        for start, stop, found, sims in runner.map(search_block, features, blocks,
                                                   shared=(shared, norms, n_candidates, k)):
            indices[start:stop], similarities[start:stop] = found, sims
    similarities[indices < 0] = 0.0
    return indices, similarities


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
    database = np.ascontiguousarray(features, dtype=np.float32)
    indices = np.empty((stop - start, k), dtype=np.int64)
    similarities = np.empty((stop - start, k), dtype=np.float32)
    for chunk in range(start, stop, _CHUNK_ROWS):
        end = min(chunk + _CHUNK_ROWS, stop)
        _, found = index.search(index.reconstruct_n(chunk, end - chunk), n_candidates + 1)
        own = np.arange(chunk, end)[:, None]
        is_self = found == own
        # Drop the sample itself; where it was not returned (exact duplicates), drop the last hit.
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), n_candidates)
        keep = np.ones_like(found, dtype=bool)
        keep[np.arange(end - chunk), drop] = False
        found = found[keep].reshape(end - chunk, n_candidates)
        missing = found < 0
        candidates = np.where(missing, own, found)  # a missing candidate reads any valid row; masked below
        queries = np.ascontiguousarray(database[chunk:end])
        products = np.empty(candidates.shape, dtype=np.float32)
        faiss.fvec_inner_products_by_idx(faiss.swig_ptr(products), faiss.swig_ptr(queries), faiss.swig_ptr(database),
                                         faiss.swig_ptr(candidates), database.shape[1], end - chunk, n_candidates)
        cosines = products / (norms[chunk:end, None] * norms[candidates])
        cosines[missing] = -np.inf
        best = np.argsort(-cosines, axis=1, kind="stable")[:, :k]
        indices[chunk - start:end - start] = np.take_along_axis(found, best, axis=1)
        similarities[chunk - start:end - start] = np.take_along_axis(cosines, best, axis=1)
    return start, stop, indices, similarities
