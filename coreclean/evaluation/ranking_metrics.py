"""How good is a review order at finding label errors? Ranking metrics against a known error mask.

Every function takes ``scores`` (higher = review sooner, the convention of every coreclean ranker)
and ``is_error`` (True where the given label is wrong) and reads the ranking
``np.argsort(-scores, kind="stable")``, so ties keep index order:

- :func:`ranking_auroc` / :func:`average_precision`: how well the scores separate errors overall;
- :func:`precision_at_k`: share of errors among the first ``k`` reviewed;
- :func:`recall_at_fraction`: share of all errors found after reviewing a fraction of the data;
- :func:`errors_found_curve`: cumulative errors found after each number reviewed (for plots);
- :func:`ranking_report`: all of the above in one dict, as the benchmarks report them.

AUROC and average precision are scikit-learn's (``sklearn.metrics``); the rest read the stable order.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from coreclean.exceptions import InputValidationError

__all__ = [
    "ranking_auroc",
    "average_precision",
    "precision_at_k",
    "recall_at_fraction",
    "errors_found_curve",
    "ranking_report",
]


def _check(scores: object, is_error: object) -> tuple[np.ndarray, np.ndarray]:
    scores_array = np.asarray(scores, dtype=np.float64)
    errors = np.asarray(is_error)
    if scores_array.ndim != 1 or errors.shape != scores_array.shape:
        raise InputValidationError(
            f"scores and is_error must be 1-D arrays of the same length; got shapes {scores_array.shape} "
            f"and {errors.shape}."
        )
    if scores_array.size == 0:
        raise InputValidationError("scores is empty.")
    if np.isnan(scores_array).any():
        raise InputValidationError("scores holds NaN; every sample needs a finite (or infinite) score.")
    if errors.dtype != bool:
        if not np.isin(errors, (0, 1)).all():
            raise InputValidationError("is_error must be boolean (or 0/1).")
        errors = errors.astype(bool)
    return scores_array, errors


def _order(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="stable")


def _compute_auroc(scores: np.ndarray, is_error: np.ndarray) -> float:
    if is_error.all() or not is_error.any():
        return float("nan")
    return float(roc_auc_score(is_error, scores))


def ranking_auroc(scores: np.ndarray, is_error: np.ndarray) -> float:
    """AUROC of ``scores`` (n_samples,) for ``is_error`` (n_samples,) bool: P(error scored above a correct label).

    Ties count one half. NaN when there are no errors or only errors.

    Examples
    --------
    >>> ranking_auroc(np.array([0.9, 0.1, 0.5]), np.array([True, False, False]))
    1.0
    """
    scores, is_error = _check(scores, is_error)
    return _compute_auroc(scores, is_error)


def _compute_average_precision(scores: np.ndarray, is_error: np.ndarray) -> float:
    if not is_error.any():
        return float("nan")
    return float(average_precision_score(is_error, scores))


def average_precision(scores: np.ndarray, is_error: np.ndarray) -> float:
    """Mean precision at the rank of each error in the ranking (NaN when there is no error).

    scikit-learn's ``average_precision_score``: tied scores form one threshold (their errors share
    one precision), which is what a reviewer following the ranking sees on average over tie orders.
    """
    scores, is_error = _check(scores, is_error)
    return _compute_average_precision(scores, is_error)


def precision_at_k(scores: np.ndarray, is_error: np.ndarray, k: int) -> float:
    """Share of errors among the ``k`` highest-scored samples (``k`` clipped to ``1..n_samples``)."""
    scores, is_error = _check(scores, is_error)
    if int(k) < 1:
        raise InputValidationError(f"k must be >= 1; got {k}.")
    k = min(int(k), scores.size)
    return float(is_error[_order(scores)[:k]].mean())


def recall_at_fraction(scores: np.ndarray, is_error: np.ndarray, fraction: float) -> float:
    """Share of all errors among the first ``ceil(fraction * n_samples)`` reviewed (NaN without errors)."""
    scores, is_error = _check(scores, is_error)
    if not 0.0 < fraction <= 1.0:
        raise InputValidationError(f"fraction must be in (0, 1]; got {fraction}.")
    n_pos = int(is_error.sum())
    if n_pos == 0:
        return float("nan")
    budget = math.ceil(Fraction(str(fraction)) * scores.size)  # exact: 0.07 * 100 is 7, not 7.000000000000001
    return float(is_error[_order(scores)[:budget]].sum() / n_pos)


def errors_found_curve(scores: np.ndarray, is_error: np.ndarray, reviewed: np.ndarray | None = None) -> np.ndarray:
    """Cumulative errors found after reviewing the first ``reviewed`` samples of the ranking.

    Parameters
    ----------
    scores, is_error : ndarray of shape (n_samples,)
    reviewed : ndarray of int, optional
        Review counts to read the curve at (clipped to ``0..n_samples``); default every count 1..n_samples.

    Returns
    -------
    ndarray of int64, the same shape as ``reviewed``.
    """
    scores, is_error = _check(scores, is_error)
    cumulative = np.r_[0, np.cumsum(is_error[_order(scores)])]
    if reviewed is None:
        return cumulative[1:].astype(np.int64)
    at = np.clip(np.asarray(reviewed, dtype=np.int64), 0, scores.size)
    return cumulative[at].astype(np.int64)


def ranking_report(scores: np.ndarray, is_error: np.ndarray, *, k: int = 1000,
                   fractions: tuple[float, ...] = (0.05, 0.10)) -> dict[str, float]:
    """The benchmark metrics of one ranking, as a dict.

    Keys: ``auroc``, ``average_precision``, ``precision_at_half_errors`` (k = ⌈|errors| / 2⌉),
    ``precision_at_{k}``, ``recall_at_{round(100·f)}pct`` for each fraction, ``n_errors``, ``n_samples``.
    """
    scores, is_error = _check(scores, is_error)
    n_errors = int(is_error.sum())
    order = _order(scores)
    hits = is_error[order]
    cumulative = np.cumsum(hits)
    half = max(1, int(np.ceil(n_errors / 2)))
    k_clipped = min(max(int(k), 1), scores.size)
    report = {
        "auroc": _compute_auroc(scores, is_error),
        "average_precision": _compute_average_precision(scores, is_error),
        "precision_at_half_errors": float(cumulative[min(half, scores.size) - 1] / min(half, scores.size)),
        f"precision_at_{int(k)}": float(cumulative[k_clipped - 1] / k_clipped),
    }
    for fraction in fractions:
        budget = max(1, int(np.ceil(fraction * scores.size)))
        report[f"recall_at_{round(100 * fraction)}pct"] = (float(cumulative[budget - 1] / n_errors)
                                                            if n_errors else float("nan"))
    report["n_errors"] = n_errors
    report["n_samples"] = int(scores.size)
    return report
