"""PCAProjection: scikit-learn's subspace, computed without copying a memory-mapped matrix."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from coreclean.scoring.linear.projection import PCAProjection


def _features(n_samples: int = 4000, n_features: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    scales = np.linspace(3.0, 0.1, n_features)
    return (rng.normal(size=(n_samples, n_features)) * scales + 1.0).astype(np.float32)


def test_spans_scikit_learns_subspace_and_projects_centred_rows() -> None:
    features = _features()
    projection = PCAProjection(8).fit(features)
    reference = PCA(8, svd_solver="covariance_eigh").fit(features.astype(np.float64))
    cosines = np.linalg.svd(projection.components_.T.astype(np.float64) @ reference.components_.T, compute_uv=False)
    assert cosines.min() > 1 - 1e-6
    assert abs(projection.explained_variance_ratio_ - reference.explained_variance_ratio_.sum()) < 1e-5
    np.testing.assert_allclose(np.abs(projection.transform(features)), np.abs(reference.transform(features)), atol=1e-3)


def test_identity_when_asked_for_as_many_columns() -> None:
    features = _features(100, 16)
    projection = PCAProjection(16).fit(features)
    assert projection.transform(features) is features and projection.explained_variance_ratio_ == 1.0


def test_reads_a_read_only_memmap_without_copying_it(tmp_path: Path) -> None:
    path = tmp_path / "features.npy"
    np.save(path, _features(40_000, 64))  # 10 MiB
    features = np.load(path, mmap_mode="r")
    tracemalloc.start()
    PCAProjection(8).fit(features)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < features.nbytes / 2  # scikit-learn's PCA copies it whole (force_writeable)
