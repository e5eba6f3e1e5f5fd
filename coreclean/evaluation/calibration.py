"""Is a score that claims to be P(label wrong) right about how often labels are wrong? Calibration against known errors.

Every function takes ``probs`` (a claimed probability, in [0, 1], that each given label is wrong)
and ``is_error`` (True where it is). Bins are equal-width on [0, 1], the last one closed:

- :func:`reliability_bins`: per bin, how many samples, their mean claimed probability and the
  share that were errors (the reliability diagram's data);
- :func:`expected_calibration_error`: the count-weighted mean gap between claim and frequency;
- :func:`maximum_calibration_error`: the largest gap over non-empty bins;
- :func:`calibration_report`: those, the ECE over the top ``top_fraction`` of the scores (the
  samples a reviewer sees first), and the expected vs actual number of errors, as the benchmarks
  report them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coreclean.exceptions import InputValidationError

__all__ = ["ReliabilityBins", "reliability_bins", "expected_calibration_error", "maximum_calibration_error",
           "calibration_report"]

DEFAULT_BINS = 10


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width bins of the claimed probability.

    Attributes
    ----------
    edges : ndarray of shape (n_bins + 1,)
    counts : ndarray of shape (n_bins,), int64
    mean_prob : ndarray of shape (n_bins,)
        Mean claimed probability in each bin (NaN where empty).
    error_rate : ndarray of shape (n_bins,)
        Share of the bin's samples whose label is wrong (NaN where empty).
    """

    edges: np.ndarray
    counts: np.ndarray
    mean_prob: np.ndarray
    error_rate: np.ndarray

    def to_dict(self) -> dict[str, list]:
        """JSON-ready lists (empty bins as None)."""
        def listed(values: np.ndarray) -> list:
            return [None if not np.isfinite(v) else float(v) for v in values]

        return {"edges": self.edges.tolist(), "counts": self.counts.tolist(), "mean_prob": listed(self.mean_prob),
                "error_rate": listed(self.error_rate)}


def _check(probs: object, is_error: object) -> tuple[np.ndarray, np.ndarray]:
    claimed = np.asarray(probs, dtype=np.float64)
    errors = np.asarray(is_error)
    if claimed.ndim != 1 or errors.shape != claimed.shape:
        raise InputValidationError(f"probs and is_error must be 1-d and of the same length; got shapes "
                                   f"{claimed.shape} and {errors.shape}.")
    if claimed.size == 0:
        raise InputValidationError("calibration needs at least one sample.")
    if not np.all(np.isfinite(claimed)) or claimed.min() < 0.0 or claimed.max() > 1.0:
        raise InputValidationError("probs must be probabilities in [0, 1]; pass P(label wrong), not a rank score.")
    if errors.dtype != bool:
        if not np.isin(errors, (0, 1)).all():
            raise InputValidationError("is_error must be boolean (or 0/1).")
        errors = errors.astype(bool)
    return claimed, errors


def reliability_bins(probs: object, is_error: object, *, n_bins: int = DEFAULT_BINS) -> ReliabilityBins:
    """Counts, mean claimed probability and observed error rate in ``n_bins`` equal-width bins of [0, 1]."""
    if n_bins < 1:
        raise InputValidationError(f"n_bins must be >= 1; got {n_bins}.")
    claimed, errors = _check(probs, is_error)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, claimed, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins).astype(np.int64)
    sums = np.bincount(index, weights=claimed, minlength=n_bins)
    hits = np.bincount(index, weights=errors.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.where(counts > 0, sums / counts, np.nan)
        error_rate = np.where(counts > 0, hits / counts, np.nan)
    return ReliabilityBins(edges=edges, counts=counts, mean_prob=mean_prob, error_rate=error_rate)


def expected_calibration_error(probs: object, is_error: object, *, n_bins: int = DEFAULT_BINS) -> float:
    """``sum_b (n_b / n) |mean claimed_b - error rate_b|`` over equal-width bins (0 = calibrated)."""
    bins = reliability_bins(probs, is_error, n_bins=n_bins)
    filled = bins.counts > 0
    gaps = np.abs(bins.mean_prob[filled] - bins.error_rate[filled])
    return float((bins.counts[filled] * gaps).sum() / bins.counts.sum())


def maximum_calibration_error(probs: object, is_error: object, *, n_bins: int = DEFAULT_BINS) -> float:
    """Largest ``|mean claimed_b - error rate_b|`` over non-empty bins (read it with the bins' counts)."""
    bins = reliability_bins(probs, is_error, n_bins=n_bins)
    filled = bins.counts > 0
    return float(np.abs(bins.mean_prob[filled] - bins.error_rate[filled]).max())


def calibration_report(probs: object, is_error: object, *, n_bins: int = DEFAULT_BINS,
                       top_fraction: float = 0.1) -> dict[str, Any]:
    """ECE, ECE over the ``top_fraction`` highest claims, MCE, expected vs actual errors, and the bins.

    The top subset is the ``ceil(top_fraction * n)`` samples with the highest claims (stable order);
    its ECE uses the same bins. ``expected_errors`` is the sum of the claims, which a calibrated
    score makes close to ``n_errors``.
    """
    if not 0.0 < top_fraction <= 1.0:
        raise InputValidationError(f"top_fraction must be in (0, 1]; got {top_fraction}.")
    claimed, errors = _check(probs, is_error)
    top = np.argsort(-claimed, kind="stable")[: int(np.ceil(top_fraction * claimed.size))]
    bins = reliability_bins(claimed, errors, n_bins=n_bins)
    return {"ece": expected_calibration_error(claimed, errors, n_bins=n_bins),
            "top_ece": expected_calibration_error(claimed[top], errors[top], n_bins=n_bins),
            "mce": maximum_calibration_error(claimed, errors, n_bins=n_bins),
            "top_fraction": top_fraction, "expected_errors": float(claimed.sum()), "n_errors": int(errors.sum()),
            "n_samples": int(claimed.size), "bins": bins.to_dict()}
