"""Recalibrate P(label wrong) without ground truth: one logit shift that makes the expected error count agree with the confident joint's.

The default's posterior reads probabilities fitted on the *noisy* labels as ``P(true | x)`` and then
applies the noise prior, so the noise is counted twice: on P3 (10 % uniform noise on digits) the
posteriors of the top 10 % are ~0.27 too low and their sum says 89 errors where there are 120.
The confident joint (:func:`coreclean.scoring.confident_joint.estimate_errors_per_class`), read from
out-of-fold probabilities and the given labels only, counts the errors well (121-125 there). So
:func:`shift_to_error_count` finds the one ``b`` with ``sum(sigmoid(logit(p) + b)) = n_errors``: a
monotone map, so the ranking is unchanged; only what the scores claim moves.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit

from coreclean.exceptions import InputValidationError

__all__ = ["shift_to_error_count"]

_EPS = 1e-9
_SHIFT_BOUND = 30.0


def shift_to_error_count(p_wrong: np.ndarray, n_errors: float) -> tuple[np.ndarray, float]:
    """``sigmoid(logit(p_wrong) + b)`` with ``b`` chosen so its sum is ``n_errors``; returns (recalibrated, b).

    ``n_errors`` must lie strictly between 0 and ``p_wrong.size``; probabilities are clipped to
    ``[1e-9, 1 - 1e-9]`` first, so 0 and 1 move too, a little.
    """
    p = np.asarray(p_wrong, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise InputValidationError("p_wrong must be a non-empty 1-d array of probabilities in [0, 1].")
    if not 0.0 < n_errors < p.size:
        raise InputValidationError(f"n_errors must be between 0 and the number of samples ({p.size}); got {n_errors}.")
    logits = logit(np.clip(p, _EPS, 1.0 - _EPS))
    shift = brentq(lambda b: float(expit(logits + b).sum()) - n_errors, -_SHIFT_BOUND, _SHIFT_BOUND, xtol=1e-10)
    return expit(logits + shift), float(shift)
