"""How many label errors does each class hold? The confident joint of Northcutt et al. (JAIR 2021).

Written here rather than imported (cleanlab stays a benchmark-only dependency). A sample labelled
``i`` is counted as "truly ``j``" when its out-of-sample probability of ``j`` reaches class ``j``'s
threshold (the mean probability of ``j`` among samples labelled ``j``), taking the largest such
``j``; the counts are then calibrated so each row sums to the number of samples labelled ``i``.
"""

from __future__ import annotations

import numpy as np

from coreclean._internal.validation import check_labels, check_sample_weight
from coreclean.exceptions import InputValidationError

__all__ = ["confident_joint", "estimate_errors_per_class", "true_label_posterior"]


def confident_joint(probs: np.ndarray, labels: np.ndarray, *, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Calibrated confident joint ``C[i, j]``: estimated count of samples labelled ``i`` whose true class is ``j``.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Out-of-sample class probabilities (rows sum to 1).
    labels : ndarray of shape (n_samples,)
        Given labels.
    sample_weight : ndarray of shape (n_samples,), optional
        Samples with weight 0 (dropped) are left out.

    Returns
    -------
    ndarray of shape (n_classes, n_classes), float64
        Row ``i`` sums to the number of (kept) samples labelled ``i``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise InputValidationError(f"probs must be 2-D (n_samples, n_classes); got shape {probs.shape}.")
    n_samples, n_classes = probs.shape
    labels = check_labels(labels, n_samples, n_classes=n_classes)
    kept = check_sample_weight(sample_weight, n_samples) > 0
    probs, labels = probs[kept], labels[kept]
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    sums = np.bincount(labels, weights=probs[np.arange(labels.size), labels], minlength=n_classes)
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)
    above = probs >= thresholds[None, :] - 1e-6
    masked = np.where(above, probs, -np.inf)
    confident = above.any(axis=1)
    true_guess = masked.argmax(axis=1)
    joint = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(joint, (labels[confident], true_guess[confident]), 1.0)
    row_sums = joint.sum(axis=1, keepdims=True)
    calibrated = np.where(row_sums > 0, joint / np.maximum(row_sums, 1e-12) * counts[:, None], 0.0)
    # A labelled class with no confident sample: assume its samples are correct.
    empty = (row_sums[:, 0] == 0) & (counts > 0)
    calibrated[empty, empty.nonzero()[0]] = counts[empty]
    return calibrated


def estimate_errors_per_class(probs: np.ndarray, labels: np.ndarray, *, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Estimated number of wrongly labelled samples among those labelled each class, shape (n_classes,).

    The off-diagonal row sums of :func:`confident_joint`.
    """
    joint = confident_joint(probs, labels, sample_weight=sample_weight)
    return joint.sum(axis=1) - np.diag(joint)


def true_label_posterior(probs: np.ndarray, labels: np.ndarray, joint: np.ndarray, *, pseudo_count: float = 1.0) -> np.ndarray:
    """Posterior of each sample's true class given its features *and* its given label.

    Bayes with class-conditional noise: ``P(true=k | x, given=y) ∝ P(k | x) · P(given=y | true=k)``, and
    ``P(given=y | true=k) ∝ C[y, k] / P(true=k)`` from the confident joint ``C`` (rows: given label).
    So a sample labelled ``y`` is suspected of being a ``k`` in proportion to how many ``y``-labelled
    samples are estimated to truly be ``k`` — a dog-labelled image that looks like a cat is suspect
    when many cats are labelled dog, and much less so when that confusion is rare.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Out-of-sample class probabilities ``P(k | x)``.
    labels : ndarray of shape (n_samples,)
        Given labels.
    joint : ndarray of shape (n_classes, n_classes)
        Confident joint (estimated counts, rows = given label, columns = true label).
    pseudo_count : float
        Added to every cell, so no confusion is ever ruled out entirely.

    Returns
    -------
    ndarray of shape (n_samples, n_classes), float64; rows sum to 1.
    """
    smoothed = joint + pseudo_count
    prior_true = np.maximum(smoothed.sum(axis=0), 1e-12)  # estimated class sizes by true label
    likelihood = smoothed / prior_true[None, :]  # ∝ P(given=y | true=k), rows indexed by y
    posterior = probs * likelihood[labels]
    posterior /= np.maximum(posterior.sum(axis=1, keepdims=True), 1e-300)
    return posterior
