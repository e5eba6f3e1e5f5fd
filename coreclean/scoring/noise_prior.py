"""Which confusions does the label noise favour? The off-diagonal of the noise, shrunk toward uniform by the data.

The confident joint (:mod:`coreclean.scoring.confident_joint`) counts a ``y``-labelled sample as truly ``k``
once ``P(k | x)`` reaches class ``k``'s *mean* self-probability. On a model that confuses cats and
dogs that count is mostly ambiguity, not noise, so a prior built from it says "cat labels are often
dogs" under uniform noise too, and promotes ambiguous but correct samples (measured on P3: −0.08
precision at |errors|/2 on CIFAR-10 uniform noise). Two changes separate noise from ambiguity:

1. **Strict counts.** Only disagreements where ``P(k | x)`` reaches the ``quantile`` of the
   self-probabilities of class ``k`` (0.9 by default, chosen on P3's synthetic noise by
   ``python -m benchmarks.prior_sweep``; 0.95 loses digits pair flips) are counted:
   a flipped label with a confident prediction, not a borderline sample.
2. **Empirical-Bayes shrinkage.** Each row of those counts (given label ``y``, true class
   ``k ≠ y``) is treated as a Dirichlet-multinomial draw around the uniform share ``1/(K-1)``; the
   concentration ``alpha`` is fitted by maximum marginal likelihood, shared across rows. Counts no
   more uneven than chance give a large ``alpha`` (a flat prior, as for uniform noise); counts piled
   on a few pairs give a small ``alpha`` (the structure is kept, as for pair flips). The prior's
   strength is thus read from the data, with no ground truth.

3. **Trust scaled by evidence.** A handful of strict counts (low noise, or a small dataset) is
   "piled on a few pairs" by chance, and the fitted ``alpha`` keeps that accident as structure. So
   the shrunk joint is mixed with a *flat* transition (one noise rate, spread evenly over the other
   classes) with weight ``n_off / (n_off + kappa)``, ``n_off`` the number of strict counts. The
   flat transition ranks samples exactly as the pooled probabilities do (no prior); with many
   counts the structured joint takes over. ``kappa`` (``EVIDENCE_KAPPA``) was chosen on P3 only by
   ``python -m benchmarks.prior_sweep``.

The structured part keeps the confident joint's diagonal and per-row error totals and redistributes each
row's errors by the shrunk shares. In a cleaning session the errors a reviewer has confirmed are
added to the counts: they are the surest evidence of which confusions the noise favours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import gammaln

from coreclean._internal.validation import check_labels, check_sample_weight
from coreclean.scoring.confident_joint import confident_joint

__all__ = ["NoiseStructure", "confident_disagreements", "fit_concentration", "flat_joint", "evidence_weight",
           "estimate_noise_structure"]

STRICT_QUANTILE = 0.9
EVIDENCE_KAPPA = 1.0  # chosen on P3 digits by benchmarks.prior_sweep (results/prior_sweep_kappa.md)
_LOG_ALPHA_BOUNDS = (-6.0, 12.0)  # alpha in [0.0025, 1.6e5]: from "keep every pair" to "flat"


@dataclass(frozen=True)
class NoiseStructure:
    """Estimated noise joint and how uneven its off-diagonal was found to be.

    Attributes
    ----------
    joint : ndarray of shape (n_classes, n_classes)
        Estimated counts, rows = given label, columns = true class; row sums = class sizes.
    disagreements : ndarray of shape (n_classes, n_classes)
        The strict off-diagonal counts the shares were fitted on.
    concentration : float
        Fitted Dirichlet concentration ``alpha``: small = structured noise, large = uniform noise.
    evidence_weight : float in [0, 1]
        Weight of the structured joint against the flat transition, ``n_off / (n_off + kappa)``.
    """

    joint: np.ndarray
    disagreements: np.ndarray
    concentration: float
    evidence_weight: float = 1.0


def confident_disagreements(probs: np.ndarray, labels: np.ndarray, *, quantile: float = STRICT_QUANTILE) -> np.ndarray:
    """Count, per (given ``y``, predicted ``k ≠ y``), samples whose ``P(k | x)`` reaches class ``k``'s ``quantile``.

    The threshold of class ``k`` is the ``quantile`` of ``P(k | x)`` over samples labelled ``k``; a
    sample reaching several thresholds counts for the most probable class. A class nobody carries
    has no threshold and is never predicted. Returns an (n_classes, n_classes) float array, zero diagonal.
    """
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = probs.shape[1]
    thresholds = np.full(n_classes, np.inf)
    for k in range(n_classes):
        own = probs[labels == k, k]
        if own.size:
            thresholds[k] = np.quantile(own, quantile)
    above = probs >= thresholds[None, :]
    predicted = np.where(above, probs, -np.inf).argmax(axis=1)
    disagree = above.any(axis=1) & (predicted != labels)
    counts = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(counts, (labels[disagree], predicted[disagree]), 1.0)
    return counts


def fit_concentration(counts: np.ndarray) -> float:
    """Maximum-marginal-likelihood ``alpha`` of a Dirichlet-multinomial around uniform shares, over all rows.

    Each row's off-diagonal counts ``n_k`` (k ≠ row) are one draw; the mean share is ``1/(K-1)``.
    Rows with no counts carry no information and drop out of the likelihood.
    """
    n_classes = counts.shape[0]
    off = ~np.eye(n_classes, dtype=bool)
    rows = [counts[r][off[r]] for r in range(n_classes) if counts[r][off[r]].sum() > 0]
    if not rows or n_classes < 3:
        return float(np.exp(_LOG_ALPHA_BOUNDS[1]))
    block = np.stack(rows)
    totals = block.sum(axis=1)
    mean_share = 1.0 / (n_classes - 1)

    def negative_log_likelihood(log_alpha: float) -> float:
        alpha = np.exp(log_alpha)
        per_row = gammaln(alpha) - gammaln(totals + alpha) + (gammaln(block + alpha * mean_share)
                                                              - gammaln(alpha * mean_share)).sum(axis=1)
        return -float(per_row.sum())

    result = minimize_scalar(negative_log_likelihood, bounds=_LOG_ALPHA_BOUNDS, method="bounded")
    return float(np.exp(result.x))


def flat_joint(class_sizes: np.ndarray, n_errors: float) -> np.ndarray:
    """Joint of a flat noise: each given label is wrong at one ``rate``, its errors spread evenly over the other classes.

    ``rate = n_errors / class_sizes.sum()``; rows = given label, columns = true class; row ``y`` sums
    to ``class_sizes[y]`` (as the structured joint's rows do). With equal class sizes the posterior of
    the given label under it is a monotone function of ``P(given | x)``: it ranks samples as the
    probabilities alone do.
    """
    class_sizes = np.asarray(class_sizes, dtype=np.float64)
    n_classes = class_sizes.size
    rate = min(max(n_errors / max(class_sizes.sum(), 1e-300), 0.0), 1.0)
    transition = np.full((n_classes, n_classes), rate / max(n_classes - 1, 1))
    np.fill_diagonal(transition, 1.0 - rate)
    return transition * class_sizes[:, None]


def evidence_weight(n_counts: float, kappa: float) -> float:
    """Trust in the structured joint given ``n_counts`` strict disagreements: ``n / (n + kappa)`` (1 when kappa is 0)."""
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0; got {kappa}.")
    if kappa == 0:
        return 1.0
    return float(n_counts / (n_counts + kappa))


def estimate_noise_structure(probs: np.ndarray, labels: np.ndarray, *, sample_weight: np.ndarray | None = None,
                             known_flips: np.ndarray | None = None, quantile: float = STRICT_QUANTILE,
                             kappa: float | None = None) -> NoiseStructure:
    """Noise joint with the confident joint's diagonal and row error totals, off-diagonal shares shrunk by the data.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Out-of-sample class probabilities.
    labels : ndarray of shape (n_samples,)
        Given labels.
    sample_weight : ndarray of shape (n_samples,), optional
        Samples with weight 0 are left out.
    known_flips : ndarray of shape (n_classes, n_classes), optional
        Errors a reviewer has already confirmed, counted by (given label, corrected label): added to
        the disagreement counts, since they show which confusions the noise favours even after
        they have left the unreviewed pool (only the shares use them; the row totals do not).
    quantile : float in (0, 1)
        Strictness of the disagreement counts (see :func:`confident_disagreements`).
    kappa : float >= 0, optional
        Strict counts at which the structured joint and the flat transition weigh the same
        (default :data:`EVIDENCE_KAPPA`; 0 trusts the structured joint whatever the evidence).
    """
    probs = np.asarray(probs, dtype=np.float64)
    n_samples, n_classes = probs.shape
    labels = check_labels(labels, n_samples, n_classes=n_classes)
    kept = check_sample_weight(sample_weight, n_samples) > 0
    probs, labels = probs[kept], labels[kept]
    base = confident_joint(probs, labels)
    counts = confident_disagreements(probs, labels, quantile=quantile)
    if known_flips is not None:
        counts = counts + np.where(np.eye(n_classes, dtype=bool), 0.0, np.asarray(known_flips, dtype=np.float64))
    alpha = fit_concentration(counts)
    shares = (counts + alpha / max(n_classes - 1, 1)) / (counts.sum(axis=1, keepdims=True) + alpha)
    np.fill_diagonal(shares, 0.0)
    shares /= np.maximum(shares.sum(axis=1, keepdims=True), 1e-300)
    errors = base.sum(axis=1) - np.diag(base)
    structured = shares * errors[:, None]
    np.fill_diagonal(structured, np.diag(base))
    weight = evidence_weight(float(counts.sum()), EVIDENCE_KAPPA if kappa is None else float(kappa))
    joint = weight * structured + (1.0 - weight) * flat_joint(base.sum(axis=1), float(errors.sum()))
    return NoiseStructure(joint=joint, disagreements=counts, concentration=alpha, evidence_weight=weight)
