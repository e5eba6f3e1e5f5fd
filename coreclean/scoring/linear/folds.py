"""Which fold is each sample in? Stratified fold assignment, fixed by a seed."""

from __future__ import annotations

import numpy as np

from coreclean._internal.validation import check_labels, check_random_state
from coreclean.exceptions import InputValidationError

__all__ = ["make_folds"]


def make_folds(labels: np.ndarray, n_folds: int = 5, *, random_state: int | np.random.Generator | None = None) -> np.ndarray:
    """Assign each sample a fold in ``0..n_folds-1``, stratified by ``labels``; shape (n_samples,), int64."""
    labels = check_labels(labels, np.asarray(labels).shape[0])
    if n_folds < 2:
        raise InputValidationError(f"n_folds must be >= 2; got {n_folds}.")
    rng = check_random_state(random_state)
    folds = np.empty(labels.size, dtype=np.int64)
    offset = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        folds[members] = (np.arange(members.size) + offset) % n_folds
        offset += members.size
    return folds
