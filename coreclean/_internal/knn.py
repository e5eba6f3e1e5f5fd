"""Nearest neighbours by cosine similarity, with faiss: candidates from a reduced space, re-ranked exactly.

With :mod:`~coreclean._internal.knn_index` (the reduced space, the index, the re-rank) and
:mod:`~coreclean._internal.knn_shards` (the index cut into shards), the one place coreclean imports
faiss. Rows are L2-normalised and projected onto the top ``search_dims`` directions of their second-moment matrix (an uncentred PCA, which keeps inner
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

import numpy as np

from coreclean._internal.blocks import BlockRunner, LocalBlocks
from coreclean._internal.knn_index import (CANDIDATE_FACTOR, EXACT_SEARCH_LIMIT, SEARCH_DIMS, _approximate,
                                           _CHUNK_ROWS, _index, _reduced_rows_and_norms, _training_rows, rerank_block)
from coreclean._internal.knn_shards import shard_count, sharded_graph
from coreclean._internal.threads import limit_graph_search_threads

__all__ = ["knn_graph", "search_block"]


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
            found = sharded_graph(features, runner, n_shards=n_shards, n_dims=n_dims,
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
