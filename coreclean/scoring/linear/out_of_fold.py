"""Out-of-fold class probabilities: K logistic regressions on fixed folds, each blind to its own fold.

A model that saw sample i partly memorises i's label, wrong or not; a model fitted without it does
not. Each sample's probabilities therefore come from the fold model that never saw it. Folds are
fixed at ``fit`` so that a re-fit after a review batch (``refit``) changes only what the batch
changed, and starts from the previous solution (warm start) instead of from zero.

The K models are fitted together, as one L-BFGS run over their separable objectives
(:func:`coreclean.scoring.linear.logistic.fit_stacked_logistic`): each pass over the rows serves
every model, with a row's weight 0 in the model of its own fold. A class missing from some fold's
training rows (tiny classes) falls back to one fit per fold.

Large data: with ``max_fit_samples`` set and more training rows than that, each fold model is
fitted on a sensitivity coreset of its training rows (see :mod:`coreclean.scoring.linear.coreset`),
all folds drawing with the same per-row uniforms so that their coresets overlap, then scores every
held-out row in chunks.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from coreclean._internal.blocks import BlockRunner, LocalBlocks
from coreclean._internal.validation import check_random_state, sklearn_seed
from coreclean.scoring.linear.standardize import Standardizer, predict_proba_chunked

__all__ = ["OutOfFoldLogistic", "fold_probs_block"]

logger = logging.getLogger(__name__)
_REFIT_TOL = 1e-4


class OutOfFoldLogistic:
    """K-fold multinomial logistic regression that keeps its folds and models for cheap re-fits.

    Parameters
    ----------
    n_folds : int
        Number of folds (K). Every sample is held out exactly once.
    C : float
        Inverse L2 strength, scikit-learn's meaning (on standardised features).
    max_iter : int
        L-BFGS iterations per fit.
    tol : float
        L-BFGS gradient tolerance; a warm-started re-fit lands within it of a fresh fit. 1e-4, the
        re-fits' floor: on 50k × 512 (``benchmarks.scale``) the out-of-fold probabilities of the given
        labels rank at Spearman 0.999991 to a fit at 1e-5, with 19–25 iterations per fold instead of
        29–37 (3e-4: 0.99988, 12–18).
    max_fit_samples : int or None
        Fit each fold model on a sensitivity coreset of this many rows when its training part is
        larger. None: always fit on all rows.
    radius : float
        Region size of the coresets' local sensitivity bound (see :func:`coreclean.scoring.linear.coreset.sample_coreset_rows`).
    random_state : int, Generator or None
        Seeds the fold assignment and any coreset sampling.
    runner : BlockRunner, optional
        Runs the passes over every row (predictions, coreset sensitivities) in row blocks; default
        :class:`coreclean._internal.blocks.LocalBlocks` (here, one block).

    Attributes
    ----------
    folds_ : ndarray of shape (n_samples,), int
        Fold of each sample.
    models_ : list of fitted :class:`coreclean.scoring.linear.logistic.MultinomialLogistic`
    probs_ : ndarray of shape (n_samples, n_classes), float32
        Out-of-fold class probabilities.
    """

    def __init__(
        self,
        *,
        n_folds: int = 5,
        C: float = 0.01,
        max_iter: int = 200,
        tol: float = 1e-4,
        max_fit_samples: int | None = None,
        radius: float = 0.01,
        random_state: int | np.random.Generator | None = None,
        runner: BlockRunner | None = None,
    ) -> None:
        self.n_folds = n_folds
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.max_fit_samples = max_fit_samples
        self.radius = radius
        self.random_state = random_state
        self.runner = runner

    def fit(self, features: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray, *, n_classes: int,
            folds: np.ndarray | None = None) -> "OutOfFoldLogistic":
        """Fit one model per fold and compute ``probs_``. Trusts its inputs.

        ``folds`` gives each sample's fold (0..K-1); by default folds are drawn stratified by label.
        """
        from sklearn.model_selection import StratifiedKFold

        self._rng = check_random_state(self.random_state)
        self.n_classes_ = n_classes
        self.standardizer_ = Standardizer().fit(features)
        n_samples = labels.size
        seed = sklearn_seed(self._rng)
        # One seed for every fold's coreset: each row gets the same uniforms in each fold, so the
        # folds' coresets overlap as much as their sensitivities allow and the stacked fit reads
        # their union once (1M rows: ~25% of the rows instead of ~76% with a draw per fold).
        self._coreset_seed = sklearn_seed(self._rng)
        if folds is None:
            n_folds = max(2, min(self.n_folds, n_samples))
            folds = np.empty(n_samples, dtype=np.int64)
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # classes smaller than n_folds are expected
                for fold, (_, held_out) in enumerate(splitter.split(np.zeros(n_samples), labels)):
                    folds[held_out] = fold
        self.folds_ = np.asarray(folds, dtype=np.int64)
        self.models_ = [None] * (int(self.folds_.max()) + 1)
        self._coreset_rows: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(self.models_)
        self.probs_ = np.zeros((n_samples, n_classes), dtype=np.float32)
        self._fit_folds(features, labels, sample_weight, range(len(self.models_)))
        return self

    def refit(self, features: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray, changed: np.ndarray) -> "OutOfFoldLogistic":
        """Re-fit after the labels or weights of rows ``changed`` changed, warm-starting every affected model.

        A fold model is affected when a changed row is in its training part, i.e. lies in another
        fold; a batch that touches one fold only leaves that fold's model as it is.
        """
        touched_folds = np.unique(self.folds_[changed])
        affected = [f for f in range(len(self.models_)) if np.any(touched_folds != f)]
        self._fit_folds(features, labels, sample_weight, affected, changed=changed)
        return self

    def _fit_folds(self, features, labels, sample_weight, folds, *, changed: np.ndarray | None = None) -> None:
        training, pilots = {}, {}
        pilot = None  # the last coreset's pilot fit, the next one's warm start
        for fold in folds:
            if changed is not None and self._coreset_rows[fold] is not None:
                training[fold] = self._updated_coreset(fold, changed, sample_weight)
            else:
                train = np.flatnonzero((self.folds_ != fold) & (sample_weight > 0))
                rows, weights, pilot = self._training_rows(features, labels, sample_weight, train, pilot)
                training[fold], pilots[fold] = (rows, weights), pilot
                whole = training[fold][0].size == np.count_nonzero(self.folds_ != fold)
                self._coreset_rows[fold] = None if whole else training[fold]
        # A warm re-fit starts within a batch's worth of the optimum; below ~1e-4 the float32
        # objective's rounding noise makes the line search spin (50k x 512: 140 evaluations for
        # 10 iterations at tol 1e-5, 3 iterations at 1e-4), so re-fits stop at 1e-4.
        tol = self.tol if changed is None else max(self.tol, _REFIT_TOL)
        every_class = all(np.unique(labels[rows[weight > 0]]).size == self.n_classes_ for rows, weight in training.values())
        # A fold model starts from its last fit, else from its coreset's pilot (a fit on a uniform sample
        # of the same rows): at 1M x 512 (benchmarks.scale), 26 iterations a fold instead of 30.
        starts = {fold: self.models_[fold] if self.models_[fold] is not None else pilots.get(fold) for fold in training}
        fitted = (self._fit_stacked(features, labels, training, tol, starts) if every_class
                  else self._fit_one_by_one(features, labels, training, tol, starts))
        for fold, model in fitted.items():
            self.models_[fold] = model
        runner = self._runner()
        blocks = runner.blocks(labels.size)
        predicted = runner.map(fold_probs_block, features, blocks, [(self.folds_[a:b],) for a, b in blocks],
                               shared=(fitted, self.standardizer_, self.n_classes_))
        for rows, probs in predicted:
            self.probs_[rows] = probs

    def _fit_stacked(self, features, labels, training: dict, tol: float, starts: dict) -> dict:
        """Every fold model in one L-BFGS run (:func:`~coreclean.scoring.linear.logistic.fit_stacked_logistic`)."""
        from coreclean.scoring.linear.logistic import fit_stacked_logistic

        folds = list(training)
        union = np.unique(np.concatenate([rows for rows, _ in training.values()]))
        everything = union.size == labels.size
        fold_weight = np.zeros((union.size, len(folds)))
        for column, fold in enumerate(folds):
            rows, weight = training[fold]
            fold_weight[rows if everything else np.searchsorted(union, rows), column] = weight
        rows_read = features if everything else features[union]
        models = fit_stacked_logistic(rows_read, labels if everything else labels[union], fold_weight,
                                      n_classes=self.n_classes_, C=self.C, mean=self.standardizer_.mean_,
                                      scale=self.standardizer_.scale_, max_iter=self.max_iter, tol=tol,
                                      warm_starts=[starts[fold] for fold in folds])
        return dict(zip(folds, models))

    def _fit_one_by_one(self, features, labels, training: dict, tol: float, starts: dict) -> dict:
        """One fit per fold (a class missing from some fold's training rows is not modelled there)."""
        from coreclean.scoring.linear.logistic import MultinomialLogistic

        previous, fitted = None, {}
        for fold, (rows, weight) in training.items():
            # A fresh fold model starts from the previous fold's: the two share all but 2/K of their
            # training rows, so it starts near its optimum (50k x 512: 37 iterations cold, ~15 warm).
            start = starts[fold] if starts[fold] is not None else previous
            model = MultinomialLogistic(C=self.C, max_iter=self.max_iter, tol=tol)
            model.fit(self.standardizer_.transform(features[rows]), labels[rows], weight, warm_start=start)
            previous = fitted[fold] = model
        return fitted

    def _runner(self) -> BlockRunner:
        return self.runner if self.runner is not None else LocalBlocks()

    def _updated_coreset(self, fold: int, changed: np.ndarray, sample_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fold's coreset after a review batch: changed rows leave the sampled part and enter exactly.

        The loss splits into the changed rows (now summed exactly, with their current weights) and
        the rest (still estimated by the sampled rows), so the coreset stays an estimate of the full
        loss without a new sensitivity pass over every row.
        """
        rows, weights = self._coreset_rows[fold]
        exact = changed[(self.folds_[changed] != fold) & (sample_weight[changed] > 0)]
        keep = ~np.isin(rows, changed)
        rows = np.concatenate([rows[keep], exact])
        weights = np.concatenate([weights[keep], sample_weight[exact]])
        self._coreset_rows[fold] = (rows, weights)
        return rows, weights

    def _training_rows(self, features, labels, sample_weight, train, pilot_start):
        """``(rows, weights, pilot)``: the rows a fold model is fitted on (all, or a coreset when too many),
        their weights, and the coreset's pilot fit (else ``pilot_start`` as it is)."""
        if self.max_fit_samples is None or train.size <= self.max_fit_samples:
            return train, sample_weight[train], pilot_start
        from coreclean.scoring.linear.coreset import sample_coreset_rows

        # Two folds' pilots share all but 2/K of their rows: each starts from the previous one's fit.
        return sample_coreset_rows(
            features, labels, sample_weight, train, m=self.max_fit_samples, C=self.C,
            standardizer=self.standardizer_, n_classes=self.n_classes_, random_state=self._coreset_seed, radius=self.radius,
            runner=self._runner(), pilot_start=pilot_start, return_pilot=True,
        )


def fold_probs_block(features, start: int, stop: int, folds: np.ndarray, models: dict, standardizer: Standardizer,
                     n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities of rows ``start:stop`` (``folds`` their folds): ``(rows, probs)``.

    Each row is scored by ``models[its fold]``; rows whose fold has no model in ``models`` are left out.
    """
    rows, parts = [], []
    for fold, model in models.items():
        members = start + np.flatnonzero(folds == fold)
        if members.size:
            rows.append(members)
            parts.append(predict_proba_chunked(model, features, members, standardizer, n_classes))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, n_classes), dtype=np.float32)
    return np.concatenate(rows), np.concatenate(parts)
