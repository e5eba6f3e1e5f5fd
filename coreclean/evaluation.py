"""Is cleaning still paying off? Cross-validated AUROC on fixed folds, bootstrap intervals, a plateau verdict.

:class:`FoldedEvaluator` fits one weighted logistic regression per fixed fold on standardised
features (warm-started from the previous round within a process) and returns out-of-fold class
probabilities; :func:`auroc` is their macro one-vs-rest AUROC, honouring sample weights (weight 0 =
dropped, left out). :func:`bootstrap_auroc` gives a percentile interval and
:func:`paired_auroc_change` the round-to-round change with a *paired* bootstrap (the same resampled
samples on both sides), which an unpaired interval per round would swallow (method.md section 5).

:func:`plateau_verdict` decides whether to stop. AUROC computed on labels that are being edited rises
by construction when hard samples are dropped, so the verdict rests on the hit rate of the last round
against the base rate (estimated errors left / samples left: what random review would find) and on
the estimated errors left; the AUROC change is reported as supporting evidence only.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from coreclean._internal.validation import check_labels, check_random_state, check_sample_weight
from coreclean.exceptions import InputValidationError

__all__ = [
    "FoldedEvaluator",
    "make_folds",
    "auroc",
    "auroc_per_class",
    "bootstrap_auroc",
    "paired_auroc_change",
    "Verdict",
    "plateau_verdict",
    "limit_threads",
]

logger = logging.getLogger(__name__)

_BOOT_CHUNK = 16


@contextlib.contextmanager
def limit_threads(n_threads: int | None) -> Iterator[None]:
    """Cap OpenMP/BLAS threads at ``n_threads`` inside the block (None: leave them alone).

    On a busy machine, scikit-learn's OpenMP loss loops and OpenBLAS spin on cores other jobs
    hold: a 1,797 x 512 logistic regression took 6.4 s with 2 threads and 0.17 s with 1 on a
    2-core box at load 6.7. scikit-learn is imported first so its OpenMP runtime is loaded (and so
    limited): threadpoolctl only limits runtimes already loaded.
    """
    if n_threads is None:
        yield
        return
    import sklearn.linear_model  # noqa: F401 - loads sklearn's OpenMP runtime so the limit reaches it
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(n_threads)):
        yield


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


class FoldedEvaluator:
    """Out-of-fold logistic regression on fixed folds, for a round-by-round AUROC.

    Parameters
    ----------
    n_folds : int
    C : float
        Inverse L2 strength on standardised features (fixed: no inner search, to stay affordable).
    max_iter : int
    folds : ndarray of shape (n_samples,), optional
        Fold of each sample (e.g. from :func:`make_folds` on the labels a session started with), so
        evaluations in different processes share folds. Default: stratified on the first ``fit``'s labels.
    random_state : int, Generator or None
        Seeds the folds.

    Attributes
    ----------
    folds_ : ndarray of shape (n_samples,), int64
        Fixed at the first ``fit``; later fits reuse them (paired comparisons need the same folds).
    probs_ : ndarray of shape (n_samples, n_classes), float64
        Out-of-fold probabilities of the last ``fit`` (every sample, dropped ones included).
    """

    def __init__(self, *, n_folds: int = 5, C: float = 0.01, max_iter: int = 200,
                 folds: np.ndarray | None = None,
                 random_state: int | np.random.Generator | None = None) -> None:
        self.n_folds = n_folds
        self.folds = folds
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, features: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None, *,
            n_classes: int | None = None) -> "FoldedEvaluator":
        """Fit the fold models on ``features`` (n_samples, n_features) with the current labels and weights."""
        from sklearn.linear_model import LogisticRegression

        from coreclean.out_of_fold import Standardizer

        labels = check_labels(labels, features.shape[0], n_classes=n_classes)
        weight = check_sample_weight(sample_weight, labels.size)
        n_classes = int(n_classes if n_classes is not None else labels.max() + 1)
        if not hasattr(self, "folds_"):
            if self.folds is not None:
                self.folds_ = np.asarray(self.folds, dtype=np.int64)
                if self.folds_.shape != labels.shape:
                    raise InputValidationError(f"folds has shape {self.folds_.shape}; expected {labels.shape}.")
            else:
                self.folds_ = make_folds(labels, self.n_folds, random_state=check_random_state(self.random_state))
            self._scaled = Standardizer().fit(features).transform(features)
            self._models: dict[int, Any] = {}
        probs = np.zeros((labels.size, n_classes), dtype=np.float64)
        for fold in np.unique(self.folds_):
            train = np.flatnonzero((self.folds_ != fold) & (weight > 0))
            held_out = np.flatnonzero(self.folds_ == fold)
            present = np.unique(labels[train])
            if present.size < 2:
                probs[held_out] = np.bincount(labels[train], minlength=n_classes)[None, :] / max(train.size, 1)
                continue
            model = self._models.get(fold)
            if model is None or not np.array_equal(model.classes_, present):
                model = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=1e-4, warm_start=True)
                self._models[fold] = model
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning: warm starts converge over rounds
                model.fit(self._scaled[train], labels[train], sample_weight=weight[train])
            probs[np.ix_(held_out, model.classes_)] = model.predict_proba(self._scaled[held_out])
        self.probs_ = probs
        return self


# ------------------------------------------------------------------------------ AUROC
def _class_sort(probs: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Per class: (class, sort order of its score, positive mask in that order, tie-group starts)."""
    prepared = []
    for k in classes:
        scores = probs[:, k]
        order = np.argsort(scores, kind="stable")
        sorted_scores = scores[order]
        starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        prepared.append((int(k), order, labels[order] == k, starts))
    return prepared


def _weighted_auc(prepared: tuple, weights: np.ndarray) -> np.ndarray:
    """AUROC of one class for each row of ``weights`` (n_boot, n_samples); NaN where a side has no weight."""
    _, order, positive, starts = prepared
    w = weights[:, order]
    pos = np.add.reduceat(np.where(positive, w, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, w), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = (pos * (below + 0.5 * neg)).sum(axis=1)
    total = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, pairs / np.where(total > 0, total, 1.0), np.nan)


def _check_inputs(probs: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None):
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise InputValidationError(f"probs must be 2-D (n_samples, n_classes); got shape {probs.shape}.")
    labels = check_labels(labels, probs.shape[0], n_classes=probs.shape[1])
    weight = check_sample_weight(sample_weight, labels.size)
    return probs, labels, weight


def _macro(prepared: list, weights: np.ndarray) -> np.ndarray:
    per_class = np.stack([_weighted_auc(p, weights) for p in prepared], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(per_class, axis=1)


def _evaluable_classes(labels: np.ndarray, weight: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(labels[weight > 0], minlength=n_classes)
    return np.flatnonzero((counts > 0) & (counts < (weight > 0).sum()))


def auroc_per_class(probs: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """One-vs-rest AUROC of each class, shape (n_classes,); NaN for a class with no (or only) kept samples."""
    probs, labels, weight = _check_inputs(probs, labels, sample_weight)
    out = np.full(probs.shape[1], np.nan)
    classes = _evaluable_classes(labels, weight, probs.shape[1])
    for prepared in _class_sort(probs, labels, classes):
        out[prepared[0]] = _weighted_auc(prepared, weight[None, :])[0]
    return out


def auroc(probs: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Macro one-vs-rest AUROC of ``probs`` (n_samples, n_classes) against ``labels``, weighted by ``sample_weight``."""
    return float(np.nanmean(auroc_per_class(probs, labels, sample_weight)))


def _boot_weights(rng: np.random.Generator, n_samples: int, n_boot: int) -> Iterator[np.ndarray]:
    done = 0
    while done < n_boot:
        size = min(_BOOT_CHUNK, n_boot - done)
        yield rng.multinomial(n_samples, np.full(n_samples, 1.0 / n_samples), size=size).astype(np.float64)
        done += size



def bootstrap_auroc(probs: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None, *,
                    n_boot: int = 200, confidence: float = 0.95,
                    random_state: int | np.random.Generator | None = None) -> tuple[float, float, float]:
    """Macro AUROC and its percentile bootstrap interval: ``(auroc, low, high)``."""
    probs, labels, weight = _check_inputs(probs, labels, sample_weight)
    rng = check_random_state(random_state)
    prepared = _class_sort(probs, labels, _evaluable_classes(labels, weight, probs.shape[1]))
    point = float(_macro(prepared, weight[None, :])[0])
    values = np.concatenate([_macro(prepared, counts * weight) for counts in _boot_weights(rng, labels.size, n_boot)])
    tail = (1.0 - confidence) / 2.0
    return point, float(np.nanquantile(values, tail)), float(np.nanquantile(values, 1.0 - tail))


def paired_auroc_change(before: tuple[np.ndarray, np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray, np.ndarray],
                        *, n_boot: int = 200, confidence: float = 0.95,
                        random_state: int | np.random.Generator | None = None) -> tuple[float, float, float]:
    """Change in macro AUROC from ``before`` to ``after``, each ``(probs, labels, sample_weight)`` over the same samples.

    Each bootstrap draw resamples the samples once and scores both sides on that same draw, so the
    interval measures the change itself, not the spread of either AUROC. Returns ``(change, low, high)``.
    """
    p0, y0, w0 = _check_inputs(*before)
    p1, y1, w1 = _check_inputs(*after)
    if y0.size != y1.size:
        raise InputValidationError(f"before has {y0.size} samples, after {y1.size}; a paired change needs the same samples.")
    rng = check_random_state(random_state)
    prep0 = _class_sort(p0, y0, _evaluable_classes(y0, w0, p0.shape[1]))
    prep1 = _class_sort(p1, y1, _evaluable_classes(y1, w1, p1.shape[1]))
    point = float(_macro(prep1, w1[None, :])[0] - _macro(prep0, w0[None, :])[0])
    diffs = np.concatenate([_macro(prep1, c * w1) - _macro(prep0, c * w0) for c in _boot_weights(rng, y0.size, n_boot)])
    tail = (1.0 - confidence) / 2.0
    return point, float(np.nanquantile(diffs, tail)), float(np.nanquantile(diffs, 1.0 - tail))


# ------------------------------------------------------------------------------ the verdict
@dataclass(frozen=True)
class Verdict:
    """Whether cleaning has plateaued, and why.

    Attributes
    ----------
    plateau : bool
        True when the last round's hits were no better than random review would find, or (almost)
        no errors are estimated left.
    summary : str
        One line for people, e.g. ``"plateau: hit rate 2% vs base rate 2% ..."``.
    evidence : dict
        ``hit_rate``, ``base_rate``, ``lift`` (hit rate / base rate), ``errors_left``,
        ``samples_left``, ``auroc_change``, ``change_low``, ``change_high``, ``auroc_trend``
        ("rising", "flat", "falling" or None) and ``reasons`` (list of str).
    """

    plateau: bool
    summary: str
    evidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def plateau_verdict(*, n_reviewed: int, n_errors_found: int, errors_left: float, samples_left: int,
                    auroc_change: tuple[float, float, float] | None = None, base_rate: float | None = None,
                    min_lift: float = 2.0,
                    min_errors_left: float = 1.0) -> Verdict:
    """Decide whether a cleaning session has plateaued after a round.

    Parameters
    ----------
    n_reviewed : int
        Samples decided in the round (skips excluded).
    n_errors_found : int
        Of those, the ones relabelled, dropped or down-weighted.
    errors_left : float
        Estimated label errors still among the unreviewed samples of the classes being cleaned.
    samples_left : int
        Unreviewed (kept) samples of those classes.
    auroc_change : (change, low, high), optional
        The paired-bootstrap AUROC change of the round (supporting evidence only).
    base_rate : float, optional
        The hit rate random review would have had in this round: errors left / samples left at the
        round's *start*. Default: ``errors_left / samples_left`` (after the round).
    min_lift : float
        A round whose hit rate is below ``min_lift`` times the base rate found no more than random
        review (roughly) would: plateau.
    min_errors_left : float
        Fewer estimated errors left than this: plateau (nothing left to find).

    Neither reason stops a session whose last round still found errors in at least half of what it
    showed: with noise that heavy (CIFAR-10N ``worse``, 40 %) random review would find as many, yet
    every round still pays.

    Returns
    -------
    Verdict
    """
    hit_rate = n_errors_found / n_reviewed if n_reviewed else float("nan")
    if base_rate is None:
        base_rate = errors_left / samples_left if samples_left else 0.0
    if base_rate > 0 and n_reviewed:
        lift = hit_rate / base_rate
    else:
        lift = float("inf") if n_errors_found else float("nan")
    exhausted = errors_left < min_errors_left or samples_left == 0
    no_lift = bool(n_reviewed) and (n_errors_found == 0 or hit_rate < min_lift * base_rate)
    still_finding = bool(n_reviewed) and hit_rate >= 0.5
    reasons = []
    if no_lift:
        reasons.append(f"the last round's hit rate {hit_rate:.0%} is not above {min_lift:g}x the base rate "
                       f"{base_rate:.1%}: the ranking finds errors no faster than random review would")
    if exhausted:
        reasons.append(f"about {errors_left:.0f} errors are estimated left in {samples_left} unreviewed samples")
    plateau = (no_lift or exhausted) and not still_finding
    trend = None
    change_text = "AUROC change not measured"
    if auroc_change is not None and np.all(np.isfinite(auroc_change)):
        change, low, high = auroc_change
        trend = "rising" if low > 0 else ("falling" if high < 0 else "flat")
        change_text = f"AUROC change {change:+.4f} [{low:+.4f}, {high:+.4f}] ({trend}"
        if plateau and trend == "rising":
            change_text += ": the model still gains, so one more round may pay)"
        elif plateau:
            change_text += ", consistent with a plateau)"
        else:
            change_text += ")"
    hit_text = f"hit rate {hit_rate:.0%} vs base rate {base_rate:.1%}" if n_reviewed else "nothing reviewed"
    left_text = f"~{errors_left:.0f} errors estimated left in {samples_left} samples"
    if plateau and no_lift and not exhausted:
        head = "plateau (the ranking no longer beats random review; errors remain)"
    elif plateau:
        head = "plateau (few or no errors left)"
    elif exhausted:
        head = "keep going (the estimate says none left, but the last round still found many: confirm with one more)"
        reasons.append("the last round's hit rate was still high")
    elif no_lift:
        head = "keep going (random review would find as many, but most of what is shown is still wrong)"
        reasons.append("the last round's hit rate was still high")
    else:
        head = "keep going"
    summary = f"{head}: {hit_text}; {left_text}; {change_text}"
    evidence = {
        "hit_rate": hit_rate, "base_rate": base_rate, "lift": lift, "errors_left": float(errors_left),
        "samples_left": int(samples_left), "n_reviewed": int(n_reviewed), "n_errors_found": int(n_errors_found),
        "auroc_change": None if auroc_change is None else float(auroc_change[0]),
        "change_low": None if auroc_change is None else float(auroc_change[1]),
        "change_high": None if auroc_change is None else float(auroc_change[2]),
        "auroc_trend": trend, "reasons": reasons,
    }
    return Verdict(plateau=plateau, summary=summary, evidence=evidence)
