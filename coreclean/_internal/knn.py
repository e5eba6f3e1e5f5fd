"""Nearest neighbours by cosine similarity, with faiss, in a reduced space: exact up to a size, an HNSW graph beyond.

The one place coreclean imports faiss. Rows are L2-normalised and projected onto the top
``search_dims`` directions of their second-moment matrix (an uncentred PCA, which keeps inner
products, fitted on a sample of rows), and re-normalised there; neighbours and similarities are
cosines in that space. Why reduce: the exact self-join over the full 512 columns cost 22 of 30 s of
a 50k ranking (issue #13) and a random-access re-rank in the full space is memory-bound (1 GB/s on
the shared 2-core box: 16 s at 200k); 128 directions keep recall@10 at 0.96 of the full-space exact
neighbours on CIFAR-10 MobileNetV2 embeddings (``benchmarks/knn_recall.py``). Above 20k samples an
HNSW graph replaces exact search: on CIFAR-10 it keeps recall@10 at 0.914; inverted lists
(IVF-Flat, 2√n lists, 32 probes) kept 0.910 but took 54 of a 76 s ranking of 50k synthetic rows
under load, where HNSW built and searched in 73 s at a busier moment (then 111 s for IVF). Chunks are read once,
so a memory-mapped matrix is never copied whole: the reduced rows (n × 256 float32, half of a
512-column matrix) are all that is held. The graph's build and search run on every free core
(:func:`coreclean._internal.threads.limit_graph_search_threads`).

Tried and not taken (issue #13, scratch runs not committed; CIFAR-10N aggre on the 50k MobileNetV2 features, seed 0, AUROC of the
default ranking; this HNSW graph: 0.9202, exact search: 0.9211): a clustered self-join (two-level
k-means into 256-row clusters, each cluster's rows scored against its 8 nearest clusters by one
matrix product) built the graph in 6.6 s at 200k rows (HNSW: ~100 s) but found 0.60 of the exact neighbours and
ranked at 0.9153 (0.9192 with 32 clusters, as slow as HNSW); IVF-Flat (4√n lists, 32 probes) ranked
at 0.9199 at 50k but its scan grows as n^1.5; HNSW in 128 dimensions at 0.9186.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from coreclean._internal.blocks import BlockRunner, LocalBlocks
from coreclean._internal.threads import limit_graph_search_threads

__all__ = ["knn_graph", "search_block", "EXACT_SEARCH_LIMIT", "SEARCH_DIMS"]

logger = logging.getLogger(__name__)

#: Above this many samples, an HNSW graph (approximate) replaces the exact flat index.
EXACT_SEARCH_LIMIT = 20_000
#: Columns of the space the search runs in (fewer columns: searched as they are).
SEARCH_DIMS = 256
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
    n_samples, n_features = features.shape
    basis = None
    if n_features > n_dims:
        rng = np.random.default_rng(random_state)
        sample = np.sort(rng.choice(n_samples, size=min(n_samples, _BASIS_ROWS), replace=False))
        unit = _normalized(features[sample]).astype(np.float64)
        _, vectors = np.linalg.eigh(unit.T @ unit)
        basis = np.ascontiguousarray(vectors[:, ::-1][:, :n_dims], dtype=np.float32)
    out = np.empty((n_samples, n_dims if basis is not None else n_features), dtype=np.float32)
    for start in range(0, n_samples, _CHUNK_ROWS):
        block = np.asarray(features[start : start + _CHUNK_ROWS], dtype=np.float32)
        # Scaling a row before the projection does not change it after re-normalising: project the raw rows.
        block = block @ basis if basis is not None else np.array(block, copy=True)
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        out[start : start + block.shape[0]] = block
    return out


def _index(n_samples: int, n_dims: int, exact_limit: int):
    import faiss

    if n_samples <= exact_limit:
        return faiss.IndexFlatIP(n_dims)
    index = faiss.IndexHNSWFlat(n_dims, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 40
    index.hnsw.efSearch = HNSW_SEARCH_DEPTH
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
    """Return each sample's ``n_neighbors`` most cosine-similar other samples (in the reduced space).

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        Finite float32 rows (a memmap is fine).
    n_neighbors : int
        Neighbours per sample, the sample itself excluded. Clipped to ``n_samples - 1``.
    exact_limit : int
        Exact search (faiss ``IndexFlatIP``) up to this many samples; above it, an HNSW graph
        (``IndexHNSWFlat``, 16 links, ``efConstruction`` 40, ``efSearch`` 48).
    search_dims : int
        Columns of the search space (see the module docstring); at least 1.
    random_state : int
        Seed of the row sample the projection is fitted on.
    runner : BlockRunner, optional
        Runs the search in row blocks (default: here, one block); the index is built here.

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), int64
        Neighbour row numbers, most similar first; -1 where fewer neighbours exist.
    similarities : ndarray of shape (n_samples, n_neighbors), float32
        Cosine similarities matching ``indices`` (0 where the index is -1).
    """
    n_samples = features.shape[0]
    k = max(0, min(n_neighbors, n_samples - 1))
    indices = np.full((n_samples, k), -1, dtype=np.int64)
    similarities = np.zeros((n_samples, k), dtype=np.float32)
    if k == 0:
        return indices, similarities

    reduced = reduced_rows(features, max(1, int(search_dims)), random_state=random_state)
    runner = runner if runner is not None else LocalBlocks()
    in_process = getattr(runner, "in_process", False)
    graph = n_samples > exact_limit
    # The graph's build and (here) search are long OpenMP regions: they get every free core.
    threads = (limit_graph_search_threads(n_samples, reduced.shape[1]) if graph
               else contextlib.nullcontext())
    import faiss

    with threads:
        index = _index(n_samples, reduced.shape[1], exact_limit)
        index.add(reduced)
        del reduced  # the index holds the rows; a search block reads its queries back from it
        shared = index if in_process else faiss.serialize_index(index)
        blocks = runner.blocks(n_samples)
        for start, stop, found, sims in runner.map(search_block, None, blocks, shared=(shared, k)):
            indices[start:stop], similarities[start:stop] = found, sims
    similarities[indices < 0] = 0.0
    return indices, similarities


def search_block(_features, start: int, stop: int, index, k: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Neighbours of the indexed rows ``start:stop``, themselves excluded: ``(start, stop, indices, similarities)``.

    ``index`` is the faiss index over every row, or its ``faiss.serialize_index`` bytes (how it
    travels to another process).
    """
    import faiss

    if isinstance(index, np.ndarray):
        index = faiss.deserialize_index(index)
    indices = np.empty((stop - start, k), dtype=np.int64)
    similarities = np.empty((stop - start, k), dtype=np.float32)
    for chunk in range(start, stop, _CHUNK_ROWS):
        end = min(chunk + _CHUNK_ROWS, stop)
        sims, found = index.search(index.reconstruct_n(chunk, end - chunk), k + 1)
        own = np.arange(chunk, end)[:, None]
        is_self = found == own
        # Drop the sample itself; where it was not returned (exact duplicates), drop the last hit.
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
        keep = np.ones_like(found, dtype=bool)
        keep[np.arange(end - chunk), drop] = False
        indices[chunk - start:end - start] = found[keep].reshape(end - chunk, k)
        similarities[chunk - start:end - start] = sims[keep].reshape(end - chunk, k)
    return start, stop, indices, similarities
