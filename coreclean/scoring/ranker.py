"""Which samples are most likely mislabelled? Label-aware importance scores, per class, kept up to date.

:class:`LabelIssueRanker` is the estimator users and sessions work with: ``fit`` scores every sample
(higher = review sooner), suggests a label, and estimates how many errors each class still holds;
``relabel`` / ``drop`` / ``verify`` record a review batch and ``rescore`` updates the scores by
warm-starting what the batch changed instead of starting over.
"""

from __future__ import annotations

import logging
import time

import numbers

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from coreclean._internal.validation import (
    check_features,
    check_labels,
    check_random_state,
    check_sample_weight,
    sklearn_seed,
)
from coreclean.exceptions import InputValidationError
from coreclean.scoring.methods import DEFAULT_METHOD, REGISTRY
from coreclean.scoring.signal_set import SignalConfig, SignalSet
from coreclean.scoring.signals import normalized_margin_score

__all__ = ["LabelIssueRanker"]

logger = logging.getLogger(__name__)


class LabelIssueRanker(BaseEstimator):
    """Score every sample by how likely its label is wrong, with scikit-learn's estimator contract.

    ``get_params`` / ``set_params`` / :func:`sklearn.base.clone` work; parameters are checked in one
    place (:meth:`_validate_params`) when ``fit`` starts; methods that need a fit raise
    :class:`sklearn.exceptions.NotFittedError` (a ``ValueError`` and an ``AttributeError``) before it.

    Parameters
    ----------
    method : str
        A ranker from :data:`coreclean.scoring.methods.REGISTRY`; ``"coreclean"`` (default) fuses the
        out-of-fold logistic regression with a neighbour vote (see :mod:`coreclean.scoring.methods`).
    n_folds : int
        Folds of the out-of-fold logistic regressions.
    C : float
        Inverse L2 strength of the logistic regressions (on standardised features).
    n_components : int or None
        The logistic regressions see the top principal components of the features (None: all
        columns); the neighbours are searched in their own projection of the full features (the
        top 256 directions of the unit rows, :mod:`coreclean._internal.knn`).
    n_neighbors : int
        Neighbours per sample for the kNN signals.
    temperature : float or None
        Softmax temperature of the similarity-weighted neighbour vote (None: equal votes).
    max_fit_samples : int or None
        Above this many training rows, models are fitted on a sensitivity coreset of this size. At
        200k samples (160k training rows per fold) a 100k coreset made a fresh fit differ from
        an updated one by its own sampling (Spearman 0.986, ``benchmarks.scale``); exact fits are
        affordable there, so the coreset starts above 200k rows.
    radius : float
        Region size of the local sensitivity bound (coreset sampling, ``local_sensitivity`` ranker).
    trusted_weight : float
        Fit weight of reviewed (verified or relabelled) samples relative to unreviewed ones.
    folds : ndarray of shape (n_samples,) or None
        Fixed fold (0..K-1) of each sample for the out-of-fold models; default: stratified
        ``n_folds``-fold drawn at ``fit`` (``signals_.out_of_fold.folds_`` holds them).
    min_class_size : int or None
        Classes with fewer kept samples are scored by their neighbours only and flagged in
        ``small_class_``; default ``2 * n_folds``.
    random_state : int, Generator or None
    engine : BlockRunner or None
        Who runs the passes over every row (out-of-fold predictions, coreset sensitivities, the
        neighbour search) in row blocks: None here; a :class:`coreclean.engines.ray_blocks.RayBlocks`
        on a Ray cluster. The maths is the same block functions either way.

    Attributes
    ----------
    scores_ : ndarray of shape (n_samples,)
        Higher = more likely mislabelled. Dropped samples keep their last score.
    probs_ : ndarray of shape (n_samples, n_classes)
        Class probabilities ``P(k | x)``, blind to each sample's own label.
    suggested_labels_ : ndarray of shape (n_samples,), int
        Most probable true class (given the features and the label, where the method models noise).
    suggested_probs_ : ndarray of shape (n_samples,)
    labels_ : ndarray of shape (n_samples,), int
        Current labels (after relabels).
    sample_weight_ : ndarray of shape (n_samples,)
        Current weights (0 = dropped).
    trusted_ : ndarray of shape (n_samples,), bool
        Reviewed samples (verified or relabelled).
    small_class_ : ndarray of shape (n_samples,), bool
        Samples whose class is too small for the model signals.
    last_update_seconds_ : float
        Wall time of the last ``fit`` or ``rescore``.
    """

    def __init__(
        self,
        method: str = DEFAULT_METHOD,
        *,
        n_folds: int = 5,
        C: float = 0.01,
        n_components: int | None = 512,
        n_neighbors: int = 20,
        temperature: float | None = 0.02,
        max_fit_samples: int | None = 200_000,
        radius: float = 0.01,
        trusted_weight: float = 2.0,
        min_class_size: int | None = None,
        folds: np.ndarray | None = None,
        random_state: int | np.random.Generator | None = None,
        engine=None,
    ) -> None:
        self.method = method
        self.n_folds = n_folds
        self.C = C
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.temperature = temperature
        self.max_fit_samples = max_fit_samples
        self.radius = radius
        self.trusted_weight = trusted_weight
        self.min_class_size = min_class_size
        self.folds = folds
        self.random_state = random_state
        self.engine = engine

    # ------------------------------------------------------------------ fitting
    def fit(self, features: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None, *,
            n_classes: int | None = None) -> "LabelIssueRanker":
        """Score every sample of ``features`` (n_samples, n_features) labelled ``labels``. Returns ``self``.

        Raises
        ------
        InputValidationError
            NaN/inf rows, a label outside ``0..n_classes-1``, mismatched lengths, an unknown method.
        """
        self._validate_params()
        start = time.perf_counter()
        features = check_features(features) if not isinstance(features, np.memmap) else self._check_memmap(features)
        labels = check_labels(labels, features.shape[0], n_classes=n_classes)
        self.n_classes_ = int(n_classes if n_classes is not None else labels.max() + 1)
        if self.n_classes_ < 2:
            raise InputValidationError("need at least two classes to find label errors.")
        largest = int(np.bincount(labels).max())
        if self.folds is None and largest < self.n_folds:
            raise InputValidationError(
                f"every class has fewer than n_folds={self.n_folds} samples (the largest has {largest}): the "
                f"out-of-fold models cannot be stratified. Pass n_folds={max(2, largest)} or fewer, or add samples.")
        self._rng = check_random_state(self.random_state)
        self.labels_ = labels.copy()
        self.sample_weight_ = check_sample_weight(sample_weight, labels.size).copy()
        self.trusted_ = np.zeros(labels.size, dtype=bool)
        config = SignalConfig(n_folds=self.n_folds, C=self.C, n_neighbors=self.n_neighbors, temperature=self.temperature,
                              max_fit_samples=self.max_fit_samples, radius=self.radius, trusted_weight=self.trusted_weight,
                              random_state=sklearn_seed(self._rng), folds=self.folds,
                              n_components=self.n_components, runner=self.engine)
        self.signals_ = SignalSet(features, self.labels_, self.sample_weight_, self.trusted_, self.n_classes_, config)
        self._pending = np.zeros(labels.size, dtype=bool)
        self._score()
        self.last_update_seconds_ = time.perf_counter() - start
        return self

    @staticmethod
    def _check_memmap(features: np.memmap) -> np.ndarray:
        """Validate a memory-mapped matrix without copying it into RAM (it must already be float32)."""
        if features.dtype != np.float32 or features.ndim != 2:
            return check_features(features)
        from coreclean._internal.validation import _finite_rows

        finite = _finite_rows(features)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise InputValidationError(f"features has {bad.size} row(s) with NaN or infinite values (first: {bad[:5].tolist()}).")
        return features

    def _score(self) -> None:
        output = REGISTRY[self.method](self.signals_, self._rng)
        scores = np.asarray(output.scores, dtype=np.float64)
        probs = output.probs
        self.small_class_ = self._small_classes()
        if probs is None or self.small_class_.any():
            neighbor = self.signals_.neighbor_probs(self.temperature)
            if probs is None:
                probs = neighbor
            else:
                probs = np.where(self.small_class_[:, None], neighbor, probs)
                # Model signals cannot judge a class they barely saw: fall back to the neighbours,
                # placed on the same scale by rank.
                neighbor_score = 1.0 - neighbor[np.arange(scores.size), self.labels_]
                scores = scores.copy()
                small = self.small_class_
                scores[small] = np.quantile(scores[~small], neighbor_score[small]) if (~small).any() else neighbor_score[small]
        self.scores_ = scores
        self.probs_ = np.asarray(probs, dtype=np.float32)
        suggestion = self.probs_ if output.posterior is None else np.where(self.small_class_[:, None], self.probs_, output.posterior)
        self.suggested_labels_ = suggestion.argmax(axis=1)
        self.suggested_probs_ = suggestion[np.arange(scores.size), self.suggested_labels_].astype(np.float64)

    def _small_classes(self) -> np.ndarray:
        minimum = self.min_class_size if self.min_class_size is not None else 2 * self.n_folds
        kept = self.sample_weight_ > 0
        sizes = np.bincount(self.labels_[kept], minlength=self.n_classes_)
        return sizes[self.labels_] < minimum

    def _validate_params(self) -> None:
        """Check every constructor parameter (called by ``fit``); raise :class:`InputValidationError` naming it."""
        if self.method not in REGISTRY:
            raise InputValidationError(f"unknown method {self.method!r}; choose one of {sorted(REGISTRY)}.")
        whole = {"n_folds": (self.n_folds, 2, False), "n_neighbors": (self.n_neighbors, 1, False),
                 "n_components": (self.n_components, 1, True), "max_fit_samples": (self.max_fit_samples, 1, True),
                 "min_class_size": (self.min_class_size, 1, True)}
        for name, (value, low, optional) in whole.items():
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise InputValidationError(f"{name} must be a whole number >= {low}{' or None' if optional else ''}; "
                                           f"got {value!r}.")
        positive = {"C": (self.C, False), "radius": (self.radius, False), "trusted_weight": (self.trusted_weight, False),
                    "temperature": (self.temperature, True)}
        for name, (value, optional) in positive.items():
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
                raise InputValidationError(f"{name} must be a finite number > 0{' or None' if optional else ''}; "
                                           f"got {value!r}.")

    def _check_fitted(self) -> None:
        if not hasattr(self, "scores_"):
            raise NotFittedError("This LabelIssueRanker is not fitted yet; call fit(features, labels) first.")

    # ------------------------------------------------------------------ review updates
    def _indices(self, indices) -> np.ndarray:
        self._check_fitted()
        idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= self.labels_.size):
            raise InputValidationError(f"sample indices must be in 0..{self.labels_.size - 1}.")
        return idx

    def relabel(self, indices, labels) -> "LabelIssueRanker":
        """Give samples ``indices`` the new ``labels`` (reviewed, so trusted from now on). Call ``rescore`` after."""
        idx = self._indices(indices)
        new = check_labels(np.broadcast_to(np.asarray(labels), idx.shape), idx.size, n_classes=self.n_classes_)
        self.labels_[idx] = new
        self.trusted_[idx] = True
        self._pending[idx] = True
        return self

    def drop(self, indices) -> "LabelIssueRanker":
        """Give samples ``indices`` weight 0: kept in the index, ignored by every fit and vote."""
        idx = self._indices(indices)
        self.sample_weight_[idx] = 0.0
        self._pending[idx] = True
        return self

    def set_weight(self, indices, weights) -> "LabelIssueRanker":
        """Down- (or up-) weight samples ``indices``; weight 0 is a drop."""
        idx = self._indices(indices)
        self.sample_weight_[idx] = check_sample_weight(np.broadcast_to(np.asarray(weights, float), idx.shape), idx.size)
        self._pending[idx] = True
        return self

    def verify(self, indices) -> "LabelIssueRanker":
        """Mark samples ``indices`` as reviewed and correct: trusted from now on."""
        idx = self._indices(indices)
        self.trusted_[idx] = True
        self._pending[idx] = True
        return self

    def rescore(self) -> "LabelIssueRanker":
        """Update every score after the recorded changes, reusing folds, neighbours and warm starts."""
        self._check_fitted()
        start = time.perf_counter()
        changed = np.flatnonzero(self._pending)
        self.signals_.update(changed)
        self._pending[:] = False
        self._score()
        self.last_update_seconds_ = time.perf_counter() - start
        return self

    # ------------------------------------------------------------------ reading results
    def ranking(self, class_index: int | None = None, *, include_dropped: bool = False) -> np.ndarray:
        """Sample indices, most suspicious first: of the samples labelled ``class_index``, or of all."""
        self._check_fitted()
        mask = np.ones(self.labels_.size, dtype=bool) if include_dropped else self.sample_weight_ > 0
        if class_index is not None:
            mask &= self.labels_ == class_index
        members = np.flatnonzero(mask)
        return members[np.argsort(-self.scores_[members], kind="stable")]

    def rank_in_class(self) -> np.ndarray:
        """1-based rank of each sample among the samples with its current label (1 = review first)."""
        self._check_fitted()
        order = np.lexsort((-self.scores_, self.labels_))
        ranks = np.empty(self.labels_.size, dtype=np.int64)
        sorted_labels = self.labels_[order]
        starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
        ranks[order] = np.arange(order.size) - starts + 1
        return ranks

    def errors_per_class(self) -> np.ndarray:
        """Estimated number of label errors among the kept samples of each class: the sum of their scores.

        The score is the posterior probability that the label is wrong, so its sum is the expected
        count; sessions recalibrate it on the reviewer's verdicts (:mod:`coreclean.sessions.errors_left`).
        """
        self._check_fitted()
        kept = self.sample_weight_ > 0
        return np.bincount(self.labels_[kept], weights=self.scores_[kept], minlength=self.n_classes_)

    def to_frame(self, *, sample_ids=None, class_names: list[str] | None = None) -> pd.DataFrame:
        """The ranking table: one row per sample, most suspicious first.

        Columns: ``id, label, score, rank_in_class, suggested_label, suggested_prob, predicted_label,
        predicted_confidence, margin, given_label_prob, weight, small_class``. With ``class_names``
        labels are names, else indices. ``predicted_*``, ``margin`` and ``given_label_prob`` are the
        out-of-fold logistic regression's (the seed recipe's signals).
        """
        self._check_fitted()
        n_samples = self.labels_.size
        ids = np.arange(n_samples) if sample_ids is None else np.asarray(sample_ids)
        oof = self.signals_.out_of_fold.probs_
        rows = np.arange(n_samples)
        predicted = oof.argmax(axis=1)
        name = (lambda a: np.asarray(class_names, dtype=object)[a]) if class_names is not None else (lambda a: a)
        frame = pd.DataFrame({
            "id": ids,
            "label": name(self.labels_),
            "score": self.scores_,
            "rank_in_class": self.rank_in_class(),
            "suggested_label": name(self.suggested_labels_),
            "suggested_prob": self.suggested_probs_,
            "predicted_label": name(predicted),
            "predicted_confidence": oof[rows, predicted],
            "margin": 1.0 - 2.0 * normalized_margin_score(oof, self.labels_),
            "given_label_prob": oof[rows, self.labels_],
            "weight": self.sample_weight_,
            "small_class": self.small_class_,
        })
        return frame.iloc[np.argsort(-self.scores_, kind="stable")].reset_index(drop=True)
