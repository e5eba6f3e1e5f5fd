"""How many label errors are still among the samples nobody has reviewed? The ranker's posterior, recalibrated.

The ranker's score is its posterior probability that a sample's given label is wrong, so the sum of
the scores of the unreviewed samples is its own estimate of the errors left. That sum is only as
good as the scores' calibration (on 3,000 CIFAR-10 images with 8% planted errors, MobileNetV2
features, it said 33 / 49 / 53 for classes holding 23 / 22 / 20: right in easy classes, about twice
too many in confusable ones; on CIFAR-10N's human noise it says 2,920 where 4,505 are, too few at
every score from 0.003 to 0.6 by a near-constant factor in the odds, e^0.7 to e^1.0). The
reviewer's verdicts measure the calibration where it matters: a logit shift,
``sigmoid(a + d_c + logit(score))``, shared by all classes (``a``) plus one per class (``d_c``), is
fitted to them by maximum a posteriori with priors centred on 0, so the ranker's own belief stands
until verdicts accumulate and then yields to them. The ranker's order and relative odds within a
class are kept; the verdicts set their level. The class's own shift matters where the ranker is
miscalibrated unevenly across classes: with the shared shift alone, a class whose top was mostly
right was credited with the errors of one whose top was mostly wrong (see :data:`CLASS_STRENGTH`).

Why not a slope too (``sigmoid(a + b * logit(score))``, used before): the verdicts come from the top
of the ranking, where the hit rate saturates, so the slope is read off a narrow band of scores and
then extrapolated into the bulk, where most of the errors left are. On the P2 sessions (CIFAR-10N,
50 reviews a class a round, 5 rounds) it was fitted at b = 1.8 on random1 and cut the bulk's
estimate to a tenth of its errors: no class-round of 50 within the errors-left bar (max(5, 30% of
true)), against 38 of 50 with the shift alone; aggre 14 vs 22 of 50. Replaying the journey's six
sessions (3 seeds, two allocations), the class-rounds within that bar from round 2 went from 91 to
96 of 96. (The confident joint's count, used before both, overcounted four to fivefold on the
journey's folder: 106 for a class holding 28; and it fell with every reviewed sample whether or not
it was an error.)
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

__all__ = ["calibrated_error_probabilities", "audit_corrected_count", "PRIOR_STRENGTH", "CLASS_STRENGTH", "MODEL_SPREAD", "HEAVY_NOISE_RATE",
           "SUGGESTED_AUDITS", "suggested_audits"]

_LOGIT_CLIP = 1e-6
PRIOR_STRENGTH = 10.0
"""Precision of the prior on the calibration map's shared shift, in verdicts' worth of evidence."""

CLASS_STRENGTH = 10.0
"""Precision of the prior on each class's own shift, in verdicts' worth of evidence.

Chosen by ``python -m benchmarks.class_shift_sweep`` (CIFAR-10 subsets of 3,000 on seeds the journey
does not use; ``benchmarks/results/class_shift_sweep.md``): without a class's own shift (precision
1e12) 117 of 150 class-rounds were within the errors-left bar on uniform noise and 112 on skewed
noise; with it, from 0.5 to 10, 146-147 and 132-134 (10 the best on skewed noise); at 50, 147 and 117."""

MODEL_SPREAD = 0.5
"""How far the recalibrated count is believed to be off before audits say, as a share of itself (one sd)."""

HEAVY_NOISE_RATE = 0.2
"""The ranker's own error rate in the classes, before any review, from which ``session start`` suggests
``--audit``. On CIFAR-10N "worse" (29 % by the ranker's count, 40 % true) the estimate without audits
had 0 of 10 classes within max(5, 30 %) of the truth from round 4, 9-10 with ``--audit 5``
(``benchmarks/results/audit_sampling.md``); on the journey's folders (14 % by the ranker, 8 % true) and
on "aggre" (6 %, 9 % true) audits bought little (``journey-audit5.md``)."""

SUGGESTED_AUDITS = 5
"""Random audits per class a round that ``session start`` suggests on heavy noise."""


def suggested_audits(base_rate: float, audits: int) -> int:
    """Random audits per class a round a session should have been started with: 0 when it needs none.

    :data:`SUGGESTED_AUDITS` when it was started without audits (``audits`` 0) and the ranker's own
    error rate in its classes before any review, ``base_rate``, is at least :data:`HEAVY_NOISE_RATE`;
    0 otherwise (also for a NaN rate).
    """
    if audits or not np.isfinite(base_rate) or base_rate < HEAVY_NOISE_RATE:
        return 0
    return SUGGESTED_AUDITS


def calibrated_error_probabilities(reviewed_scores: np.ndarray, reviewed_was_error: np.ndarray,
                                   unreviewed_scores: np.ndarray, *, prior_strength: float = PRIOR_STRENGTH,
                                   reviewed_classes: np.ndarray | None = None,
                                   unreviewed_classes: np.ndarray | None = None,
                                   class_strength: float | None = None) -> np.ndarray:
    """P(error) of each unreviewed sample: its score, recalibrated on the reviewer's verdicts.

    The map is ``P(error | s, class c) = sigmoid(a + d_c + logit(s))``: a shift ``a`` of the
    log-odds shared by every class, plus one ``d_c`` per class, fitted by maximum a posteriori on
    the reviewed samples' scores (when shown) and verdicts, with Gaussian priors centred on 0 (``a``
    of precision ``prior_strength``, each ``d_c`` of precision ``class_strength``, in verdicts'
    worth of evidence). So the ranker's own posterior is the starting belief, the verdicts move it
    as they accumulate, and a class whose verdicts keep contradicting the shared shift (one class
    holding most of the errors, another few) gets its own. Without classes, only ``a`` is fitted.
    With no verdicts it returns the scores.

    Parameters
    ----------
    reviewed_scores : ndarray of shape (n_reviewed,)
        The score each reviewed sample had when it was shown, in [0, 1]; NaN rows are left out.
    reviewed_was_error : ndarray of bool, shape (n_reviewed,)
        The reviewer's verdict: relabelled, dropped or down-weighted.
    unreviewed_scores : ndarray of shape (n_unreviewed,)
        Current scores of the samples still unreviewed, in [0, 1].
    prior_strength : float
        Precision of the prior on ``a`` (in verdicts' worth of evidence).
    reviewed_classes, unreviewed_classes : ndarray of int, optional
        The class each sample is counted in (for a reviewed one, the class it was shown in). Both
        or neither.
    class_strength : float, optional
        Precision of the prior on each ``d_c``; :data:`CLASS_STRENGTH` when not given.

    Returns
    -------
    ndarray of shape (n_unreviewed,)
    """
    reviewed_scores = np.asarray(reviewed_scores, dtype=np.float64)
    was_error = np.asarray(reviewed_was_error, dtype=bool)
    unreviewed = _logit(np.asarray(unreviewed_scores, dtype=np.float64))
    known = np.isfinite(reviewed_scores)
    x, y = _logit(reviewed_scores[known]), was_error[known].astype(np.float64)
    if x.size == 0:
        return _sigmoid(unreviewed)
    class_strength = CLASS_STRENGTH if class_strength is None else class_strength
    if (reviewed_classes is None) != (unreviewed_classes is None):
        raise ValueError("give reviewed_classes and unreviewed_classes together, or neither")
    if reviewed_classes is None:
        shown_in, pool_in, n_classes = np.zeros(x.size, np.int64), np.zeros(unreviewed.size, np.int64), 0
    else:
        names, codes = np.unique(np.concatenate([np.asarray(reviewed_classes)[known], np.asarray(unreviewed_classes)]),
                                 return_inverse=True)
        shown_in, pool_in, n_classes = codes[:x.size], codes[x.size:], names.size

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        shared, own = params[0], params[1:]
        z = shared + (own[shown_in] if n_classes else 0.0) + x
        residual = _sigmoid(z) - y
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        penalty = 0.5 * prior_strength * shared ** 2 + 0.5 * class_strength * float(own @ own)
        grad_own = np.bincount(shown_in, weights=residual, minlength=n_classes) + class_strength * own if n_classes \
            else np.zeros(0)
        return nll + penalty, np.concatenate([[residual.sum() + prior_strength * shared], grad_own])

    params = minimize(loss, np.zeros(1 + n_classes), jac=True, method="L-BFGS-B").x
    return _sigmoid(params[0] + (params[1:][pool_in] if n_classes else 0.0) + unreviewed)


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    return np.log(clipped) - np.log1p(-clipped)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def audit_corrected_count(model_count: float, n_pool: int, audit_was_error: np.ndarray,
                          audit_probabilities: np.ndarray, *, spread: float = MODEL_SPREAD) -> tuple[float, float]:
    """A class's errors left, ``(estimate, sd)``: the model's count, corrected by what random audits found.

    The audits are a random sample of the class's unreviewed pool (``n_pool`` samples), so their
    residuals ``was_error - P(error)`` measure the model count's bias without assuming the
    calibration map is right: ``n_pool x mean(residual)`` (the difference estimator), with standard
    error ``se = n_pool x sd(residual) / sqrt(n_audits)``. The residual variance is floored at the
    model's own ``mean(P (1 - P))``, so audits that happen to find nothing do not claim a certainty
    they lack. The correction is taken in proportion to its precision against the belief that the
    model count is off by ``spread x model_count`` (at least 1), or by what the audits show beyond
    their noise where that is more (``tau^2 = max(belief^2, correction^2 - se^2)``, the positive-part
    empirical-Bayes estimate): ``w = tau^2 / (tau^2 + se^2)``, a normal-normal posterior. So a count
    the audits contradict many times over is replaced, not nudged. A few audits on a few hundred
    samples barely move a good count; many audits on a class whose count is far off move it most of
    the way.

    On CIFAR-10N (``benchmarks/audit_sampling.py``, "through the product": 50 ranked reviews and 5
    audits a class a round, reviewed and applied, simulated reviewer, 5 rounds) the "worse" labels'
    classes within max(5, 30 %) of the truth went from 9 / 5 / 1 / 0 / 0 of 10 to 10 / 10 / 9 / 9 / 9
    (round 5: 17,400 for 17,500, against 25,800 without audits); on "aggre" from 4-5 to 2-7 (7 from
    round 4): its count is too low by about a third, and 5 audits a class a round are too few to
    say so with confidence early on.

    Parameters
    ----------
    model_count : float
        The recalibrated count (:func:`calibrated_error_probabilities` summed over the pool).
    n_pool : int
        Unreviewed kept samples of the class.
    audit_was_error : ndarray of bool
        The verdicts on the class's audits.
    audit_probabilities : ndarray
        ``P(error)`` of each audit under the same calibration, at its score now under the label it
        was drawn with (the scale the pool's count is on).

    Returns
    -------
    (estimate, sd) : (float, float)
        The estimate (never below 0) and its posterior standard deviation; with fewer than two
        audits, the model count and ``tau``.
    """
    was_error = np.asarray(audit_was_error, dtype=np.float64)
    probabilities = np.asarray(audit_probabilities, dtype=np.float64)
    tau = max(spread * float(model_count), 1.0)
    if was_error.size < 2 or n_pool == 0:
        return float(model_count), tau
    residual = was_error - probabilities
    variance = max(float(residual.var(ddof=1)), float(np.mean(probabilities * (1.0 - probabilities))))
    se = n_pool * np.sqrt(variance / residual.size)
    correction = n_pool * float(residual.mean())
    tau = max(tau, float(np.sqrt(max(correction ** 2 - se ** 2, 0.0))))  # a correction far beyond its noise is believed
    weight = tau ** 2 / (tau ** 2 + se ** 2)
    estimate = float(model_count) + weight * correction
    return max(0.0, estimate), float(np.sqrt(weight) * se)
