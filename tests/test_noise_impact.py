"""noise_impact: cross-validated accuracy falls as injected label noise rises."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from coreclean.exceptions import InputValidationError
from coreclean.diagnostics.noise_impact import noise_impact


def test_accuracy_drops_with_noise_on_digits() -> None:
    digits = load_digits()
    features = (digits.data / 16.0).astype(np.float32)
    frame = noise_impact(features, digits.target, rates=(0.0, 0.2, 0.6), n_folds=3, random_state=0, n_threads=1)
    assert list(frame.columns) == ["rate", "n_flipped", "accuracy", "accuracy_std", "accuracy_drop"]
    assert frame["rate"].tolist() == [0.0, 0.2, 0.6]
    assert frame["n_flipped"].tolist() == [0, round(0.2 * 1797), round(0.6 * 1797)]
    assert frame["accuracy"].iloc[0] > 0.9
    assert frame["accuracy"].iloc[2] < frame["accuracy"].iloc[0]
    assert frame["accuracy_drop"].iloc[0] == 0.0 and frame["accuracy_drop"].iloc[2] > 0


def test_seeded_and_inputs_untouched() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(120, 6)).astype(np.float32)
    labels = rng.integers(0, 3, size=120)
    kept = labels.copy()
    first = noise_impact(features, labels, rates=(0.0, 0.1), kind="pairs", n_folds=3, random_state=5, n_threads=1)
    second = noise_impact(features, labels, rates=(0.0, 0.1), kind="pairs", n_folds=3, random_state=5, n_threads=1)
    assert first.equals(second)
    assert np.array_equal(labels, kept)


def test_bad_arguments() -> None:
    features = np.zeros((10, 2), dtype=np.float32)
    labels = np.array([0, 1] * 5)
    with pytest.raises(InputValidationError, match="rates"):
        noise_impact(features, labels, rates=(1.5,))
    with pytest.raises(InputValidationError, match="n_folds"):
        noise_impact(features, labels, n_folds=1)
    with pytest.raises(InputValidationError, match="at least n_folds"):
        noise_impact(features, labels, n_folds=6)
