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
    check_pred_probs,
    check_random_state,
    check_sample_weight,
    sklearn_seed,
)
from coreclean.exceptions import InputValidationError
from coreclean.scoring.methods import DEFAULT_METHOD, PROBABILITY_RANKERS, REGISTRY
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
        out-of-fold logistic regression (or the ``pred_probs`` given to ``fit``) with a neighbour vote
        (see :mod:`coreclean.scoring.methods`).
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
        ``small_class_``; default ``2 * n_folds``. Not applied with ``pred_probs`` (the caller's
        model was not trained on our folds, so a small class is no reason to distrust it).
    random_state : int, Generator or None
    memory : str, path, :class:`joblib.Memory` or None
        Where to cache the label-blind work (the PCA projection's fit and the neighbour graph), as
        scikit-learn's ``memory`` parameters do: a later fit on the same features (a session's next
        command, another process) loads them instead of recomputing (3,000 x 1,280: ~1.2 s of a
        ~1.4 s fit). Keyed by the features' content and the settings; None caches nothing. Only
        an integer ``random_state`` makes the neighbour graph's key repeatable; a graph computed by
        an ``engine`` is not cached.
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
    pred_probs_ : ndarray of shape (n_samples, n_classes) or None
        The probabilities given to ``fit`` (validated; fixed through every ``rescore``), or None.
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
        memory=None,
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
        self.memory = memory
        self.engine = engine

    # ------------------------------------------------------------------ fitting
    def fit(self, features: np.ndarray | None, labels: np.ndarray, sample_weight: np.ndarray | None = None, *,
            n_classes: int | None = None, pred_probs: np.ndarray | None = None) -> "LabelIssueRanker":
        """Score every sample of ``features`` (n_samples, n_features) labelled ``labels``. Returns ``self``.

        ``pred_probs`` (n_samples, n_classes): out-of-sample class probabilities from your own model
        (cleanlab's convention: row i for sample i, column k for class k, rows summing to 1). They
        replace the out-of-fold logistic regressions and stay fixed through every ``rescore``, while
        the neighbour vote, the noise prior and trust follow the reviews. ``features`` may then be
        None: no neighbour vote, only methods in :data:`coreclean.scoring.methods.PROBABILITY_RANKERS`.
        ``n_classes`` defaults to ``pred_probs``' columns, else to the largest label + 1.

        Raises
        ------
        InputValidationError
            NaN/inf rows, a label outside ``0..n_classes-1``, mismatched lengths, an unknown method;
            ``pred_probs`` of the wrong shape, not finite, negative, or with rows not summing to 1.
        """
        self._validate_params()
        start = time.perf_counter()
        if features is None:
            if pred_probs is None:
                raise InputValidationError("features is None: pass features, pred_probs, or both.")
            if self.method not in PROBABILITY_RANKERS:
                raise InputValidationError(f"method {self.method!r} needs features; with pred_probs alone choose one "
                                           f"of {sorted(PROBABILITY_RANKERS)}.")
            n_samples = np.shape(labels)[0] if np.ndim(labels) == 1 else -1
        else:
            features = check_features(features) if not isinstance(features, np.memmap) else self._check_memmap(features)
            n_samples = features.shape[0]
        if pred_probs is not None and n_classes is None and np.ndim(pred_probs) == 2:
            n_classes = np.shape(pred_probs)[1]
        labels = check_labels(labels, n_samples, n_classes=n_classes)
        self.pred_probs_ = None if pred_probs is None else check_pred_probs(pred_probs, labels.size, n_classes)
        self.n_classes_ = int(n_classes if n_classes is not None else labels.max() + 1)
        if self.n_classes_ < 2:
            raise InputValidationError("need at least two classes to find label errors.")
        largest = int(np.bincount(labels).max())
        if self.folds is None and self.pred_probs_ is None and largest < self.n_folds:
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
                              n_components=self.n_components, memory=self._memory(), runner=self.engine)
        self.signals_ = SignalSet(features, self.labels_, self.sample_weight_, self.trusted_, self.n_classes_, config,
                                  external_probs=self.pred_probs_)
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
        self.small_class_ = small = self._small_classes()
        if probs is None:
            probs = (self.signals_.model_probs if self.signals_.features is None
                     else self.signals_.neighbor_probs(self.temperature))
        elif small.any():
            neighbor = self.signals_.neighbor_probs(self.temperature)
            probs = np.where(small[:, None], neighbor, probs)
            # Model signals cannot judge a class they barely saw: fall back to the neighbours,
            # placed on the same scale by rank.
            neighbor_score = 1.0 - neighbor[np.arange(scores.size), self.labels_]
            scores = scores.copy()
            scores[small] = np.quantile(scores[~small], neighbor_score[small]) if (~small).any() else neighbor_score[small]
        self.scores_ = scores
        self.probs_ = np.asarray(probs, dtype=np.float32)
        self._score_under = output.score_under
        suggestion = self.probs_ if output.posterior is None else np.where(self.small_class_[:, None], self.probs_, output.posterior)
        self.suggested_labels_ = suggestion.argmax(axis=1)
        self.suggested_probs_ = suggestion[np.arange(scores.size), self.suggested_labels_].astype(np.float64)

    def _memory(self):
        """``memory`` as a :class:`joblib.Memory`, or None when nothing is cached."""
        from sklearn.utils.validation import check_memory

        return None if self.memory is None else check_memory(self.memory)

    def _small_classes(self, labels: np.ndarray | None = None) -> np.ndarray:
        """Whether each of ``labels`` (default: every sample's current label) names a class too small for the model."""
        labels = self.labels_ if labels is None else labels
        if self.pred_probs_ is not None:  # the caller's model judges every class; our folds played no part
            return np.zeros(labels.size, dtype=bool)
        minimum = self.min_class_size if self.min_class_size is not None else 2 * self.n_folds
        kept = self.sample_weight_ > 0
        sizes = np.bincount(self.labels_[kept], minlength=self.n_classes_)
        return sizes[labels] < minimum

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

    def scores_under(self, indices, labels) -> np.ndarray:
        """The scores samples ``indices`` would have now under ``labels``, as if unreviewed; NaN where it cannot say.

        For methods whose score is a function of label-blind probabilities (the default, the
        confidence and margin baselines, the neighbour vote) it is that function at ``labels``: a
        reviewed sample's score under the label it was shown with, comparable with the unreviewed
        samples' scores now (a session's random audits are measured this way). NaN for other methods
        and for labels of classes too small for the model (their scores are mapped from the vote).
        """
        idx = self._indices(indices)
        labels = check_labels(np.broadcast_to(np.asarray(labels), idx.shape), idx.size, n_classes=self.n_classes_)
        out = np.full(idx.size, np.nan)
        known = ~self._small_classes(labels)
        if self._score_under is not None and known.any():
            out[known] = self._score_under(self.probs_[idx[known]].astype(np.float64), labels[known])
        return out

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
        out-of-fold logistic regression's (the seed recipe's signals), or those of the ``pred_probs``
        given to ``fit``.
        """
        self._check_fitted()
        n_samples = self.labels_.size
        ids = np.arange(n_samples) if sample_ids is None else np.asarray(sample_ids)
        oof = self.signals_.model_probs
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
