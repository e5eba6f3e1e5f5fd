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

3. **Trust in the structure, from its asymmetry.** Ambiguity is symmetric: a model that mistakes
   some cats for dogs mistakes about as many dogs for cats, so on a 74%-accurate model the strict
   counts pile up on confusable pairs in *both* directions, under uniform noise, at 0.5% noise
   or with no noise at all. Label noise that favours confusions is usually directional (a cat
   labelled dog is not matched by a dog labelled cat). So the structured joint is mixed with a
   *flat* transition (one noise rate, spread evenly over the other classes) with weight equal to
   the share of the counts' asymmetry that chance does not explain: Bowker's test of symmetry,
   ``X² = Σ_{y<k} (n_yk − n_ky)² / (n_yk + n_ky)`` over the ``df`` pairs with counts (columns
   rescaled to the row's class size), weight ``max(0, X² − df − SYMMETRY_SDS·√(2·df)) / X²``.
   Symmetric counts of any size, and a handful of chance counts, give weight 0, and the flat
   transition ranks samples exactly as the pooled probabilities do (no prior); directional noise
   drives ``X²`` far above ``df`` and the structured joint takes over. ``SYMMETRY_SDS`` was
   chosen on P3 only by ``python -m benchmarks.prior_sweep``. Noise that favours a pair in both
   directions is, by this rule, not told apart from ambiguity, and gets the flat prior, until a
   reviewer confirms such errors: confirmed errors are not ambiguity, so their own unevenness
   (beyond chance, against an even spread) adds trust whichever way they go.

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

__all__ = ["NoiseStructure", "confident_disagreements", "fit_concentration", "flat_joint", "asymmetry_weight",
           "unevenness_weight", "estimate_noise_structure"]

STRICT_QUANTILE = 0.9
SYMMETRY_SDS = 1.0
"""Chance asymmetry discounted before the structure is trusted. Chosen on P3 only (digits and the CIFAR
slice; ``python -m benchmarks.prior_sweep``, results/prior_sweep_symmetry.md): summed shortfall below the
best other ranker 0.248 / 0.183 / 0.180 / 0.183 at 0 / 1 / 2 / 3, against 0.601 for the structure trusted
whatever its symmetry. 1 and 2 are within 0.004 of each other; 1 is kept because it keeps more of a pair
flip's structure where counts are few (digits pairs10 P@|E|/2 0.961 vs 0.944), and every committed run
since 4a01457 used it."""
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
        Weight of the structured joint against the flat transition (:func:`asymmetry_weight`).
    structured : ndarray of shape (n_classes, n_classes)
        The structured joint before that mix (``joint`` when the weight is 1).
    """

    joint: np.ndarray
    disagreements: np.ndarray
    concentration: float
    evidence_weight: float
    structured: np.ndarray


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


def asymmetry_weight(counts: np.ndarray, class_sizes: np.ndarray, *, n_sd: float = SYMMETRY_SDS) -> float:
    """Trust in the structured joint: the share of the counts' asymmetry beyond chance (Bowker's test of symmetry).

    ``counts[y, k]`` (rows: given label) are compared with ``counts[k, y]`` rescaled to class ``y``'s
    size; ``X² = Σ_{y<k} (n_yk − n_ky)² / (n_yk + n_ky)`` over the ``df`` pairs with any count.
    Returns ``max(0, X² − df − n_sd·√(2·df)) / X²`` (0 when there are no counts): about 0 for
    symmetric counts, whatever their size, and toward 1 for directional ones.
    """
    counts = np.asarray(counts, dtype=np.float64)
    sizes = np.asarray(class_sizes, dtype=np.float64)
    reverse = counts.T * (sizes[:, None] / np.maximum(sizes[None, :], 1e-300))
    upper = np.triu_indices(counts.shape[0], 1)
    total = (counts + reverse)[upper]
    present = total > 0
    chi2 = float(((counts - reverse)[upper][present] ** 2 / total[present]).sum())
    return _share_beyond_chance(chi2, int(present.sum()), n_sd)


def unevenness_weight(counts: np.ndarray, *, n_sd: float = SYMMETRY_SDS) -> float:
    """Trust in the structure of confirmed errors: how far each row's counts are from even, beyond chance.

    Pearson's ``X²`` of every row's off-diagonal counts against an even spread over the other
    classes, summed over the rows with counts (``df`` = their number times ``K − 2``); returns
    ``max(0, X² − df − n_sd·√(2·df)) / X²``, 0 without counts.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_classes = counts.shape[0]
    if n_classes < 3:  # one other class: nothing to be uneven over
        return _share_beyond_chance(0.0, 0, n_sd)
    rows = counts[~np.eye(n_classes, dtype=bool)].reshape(n_classes, n_classes - 1)
    rows = rows[rows.sum(axis=1) > 0]
    expected = rows.mean(axis=1, keepdims=True)
    chi2 = float(((rows - expected) ** 2 / expected).sum())
    return _share_beyond_chance(chi2, rows.shape[0] * (n_classes - 2), n_sd)


def _share_beyond_chance(chi2: float, df: int, n_sd: float) -> float:
    """``max(0, X² − df − n_sd·√(2·df)) / X²``: the share of a chi-square statistic that chance (its
    mean ``df`` plus ``n_sd`` of its standard deviations) does not explain; 0 when ``X²`` is 0."""
    if n_sd < 0:
        raise ValueError(f"n_sd must be >= 0; got {n_sd}.")
    if chi2 <= 0:
        return 0.0
    return max(0.0, (chi2 - df - n_sd * np.sqrt(2.0 * df)) / chi2)


def estimate_noise_structure(probs: np.ndarray, labels: np.ndarray, *, sample_weight: np.ndarray | None = None,
                             known_flips: np.ndarray | None = None, quantile: float = STRICT_QUANTILE,
                             n_sd: float = SYMMETRY_SDS) -> NoiseStructure:
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
        they have left the unreviewed pool (only the shares use them; the row totals do not). They
        are errors, not ambiguity, so their own unevenness also raises the structure's weight
        (:func:`unevenness_weight`), whether or not they go both ways.
    quantile : float in (0, 1)
        Strictness of the disagreement counts (see :func:`confident_disagreements`).
    n_sd : float >= 0
        Chance asymmetry discounted, in standard deviations of the symmetry statistic (see
        :func:`asymmetry_weight`).
    """
    probs = np.asarray(probs, dtype=np.float64)
    n_samples, n_classes = probs.shape
    labels = check_labels(labels, n_samples, n_classes=n_classes)
    kept = check_sample_weight(sample_weight, n_samples) > 0
    probs, labels = probs[kept], labels[kept]
    base = confident_joint(probs, labels)
    strict = confident_disagreements(probs, labels, quantile=quantile)
    confirmed = np.zeros_like(strict)
    if known_flips is not None:
        confirmed = np.where(np.eye(n_classes, dtype=bool), 0.0, np.asarray(known_flips, dtype=np.float64))
    counts = strict + confirmed
    alpha = fit_concentration(counts)
    shares = (counts + alpha / max(n_classes - 1, 1)) / (counts.sum(axis=1, keepdims=True) + alpha)
    np.fill_diagonal(shares, 0.0)
    shares /= np.maximum(shares.sum(axis=1, keepdims=True), 1e-300)
    errors = base.sum(axis=1) - np.diag(base)
    structured = shares * errors[:, None]
    np.fill_diagonal(structured, np.diag(base))
    class_sizes = base.sum(axis=1)
    # Confirmed errors are not ambiguity: their structure is trusted as far as it is uneven beyond chance.
    distrust_strict = 1.0 - asymmetry_weight(strict, class_sizes, n_sd=n_sd)
    weight = 1.0 - distrust_strict * (1.0 - unevenness_weight(confirmed, n_sd=n_sd))
    joint = weight * structured + (1.0 - weight) * flat_joint(class_sizes, float(errors.sum()))
    return NoiseStructure(joint=joint, disagreements=counts, concentration=alpha, evidence_weight=weight,
                          structured=structured)
