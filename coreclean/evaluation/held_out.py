"""How well do the current labels fit? Out-of-fold logistic regression on fixed folds, round after round.

:class:`FoldedEvaluator` fits one weighted logistic regression per fixed fold on standardised
features (warm-started from the previous round within a process) and returns out-of-fold class
probabilities, which :mod:`coreclean.evaluation.auroc` turns into a macro AUROC with intervals.

Cost: at 3,000 x 1,280 (10 classes) the five fits take about a second, because they run on the
thread count :func:`coreclean._internal.threads.limit_threads` picks for their size (one thread
here: with two, spinning BLAS/OpenMP workers made them 30-60x slower on a 2-core box) and stop at
``tol=1e-3`` (about 40 L-BFGS iterations instead of 65 at 1e-4, macro AUROC within 1e-4).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from coreclean._internal.threads import limit_threads
from coreclean._internal.validation import check_labels, check_random_state, check_sample_weight
from coreclean.exceptions import InputValidationError
from coreclean.scoring.linear.folds import make_folds

__all__ = ["FoldedEvaluator"]


class FoldedEvaluator:
    """Out-of-fold logistic regression on fixed folds, for a round-by-round AUROC.

    Parameters
    ----------
    n_folds : int
    C : float
        Inverse L2 strength on standardised features (fixed: no inner search, to stay affordable).
    max_iter : int
    tol : float
        L-BFGS stopping tolerance of each fit.
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

    def __init__(self, *, n_folds: int = 5, C: float = 0.01, max_iter: int = 200, tol: float = 1e-3,
                 folds: np.ndarray | None = None,
                 random_state: int | np.random.Generator | None = None) -> None:
        self.n_folds = n_folds
        self.folds = folds
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, features: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None, *,
            n_classes: int | None = None) -> "FoldedEvaluator":
        """Fit the fold models on ``features`` (n_samples, n_features) with the current labels and weights.

        Runs on the thread count :func:`coreclean._internal.threads.limit_threads` chooses for the
        features' shape, or on the count of an enclosing explicit ``limit_threads(n)``.
        """
        with limit_threads(None, n_samples=features.shape[0], n_features=features.shape[1]):
            return self._fit(features, labels, sample_weight, n_classes=n_classes)

    def _fit(self, features: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None, *,
             n_classes: int | None) -> "FoldedEvaluator":
        from sklearn.linear_model import LogisticRegression

        from coreclean.scoring.linear.standardize import Standardizer

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
                model = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol, warm_start=True)
                self._models[fold] = model
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning: warm starts converge over rounds
                model.fit(self._scaled[train], labels[train], sample_weight=weight[train])
            probs[np.ix_(held_out, model.classes_)] = model.predict_proba(self._scaled[held_out])
        self.probs_ = probs
        return self


