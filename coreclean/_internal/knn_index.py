"""The reduced search space and the faiss index the neighbours' candidates come from (see :mod:`coreclean._internal.knn`).

Rows are L2-normalised, projected on their top second-moment directions and re-normalised; the
index over them is exact (``IndexFlatIP``) or an IVF-PQ fast-scan index refined by the reduced
rows. :func:`rerank_block` re-ranks candidates by their full-space cosine, for one index or shards.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["reduced_rows", "rerank_block", "most_similar", "EXACT_SEARCH_LIMIT", "SEARCH_DIMS", "CANDIDATE_FACTOR", "REFINE_FACTOR",
           "IVF_LISTS_PER_ROOT", "IVF_PROBES"]

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
        similarities[chunk - start:end - start], indices[chunk - start:end - start] = most_similar(cosines, hits, k)
    return start, stop, indices, similarities


def most_similar(similarities: np.ndarray, ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``n`` highest ``similarities`` and their ``ids``, highest first (ties in column order)."""
    best = np.argsort(-similarities, axis=1, kind="stable")[:, :n]
    return np.take_along_axis(similarities, best, axis=1), np.take_along_axis(ids, best, axis=1)
