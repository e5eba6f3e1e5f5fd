"""The shared, lazily computed ingredients every ranker draws on, kept for cheap updates.

One :class:`SignalSet` per dataset holds the out-of-fold logistic regressions (fixed folds), the kNN
graph (label-blind, so computed once) and the in-sample fit, each computed on first use. After a
review batch, :meth:`SignalSet.update` re-fits what depends on the changed labels or weights,
warm-started, and leaves the rest alone. All rankers of one benchmark run therefore see the same
embeddings, folds and neighbours.

Probabilities from the user's own model (``external_probs``, out of sample) stand in for the
out-of-fold regressions: :attr:`SignalSet.model_probs` is then those, fixed through every update,
and the features (optional then) only feed the neighbours.
"""

from __future__ import annotations

import logging
import time
from functools import cached_property

import numpy as np

from coreclean._internal.knn import knn_graph
from coreclean._internal.validation import check_random_state
from coreclean.exceptions import InputValidationError
from coreclean.scoring.linear.out_of_fold import OutOfFoldLogistic
from coreclean.scoring.linear.standardize import Standardizer
from coreclean.scoring.linear.projection import PCAProjection
from coreclean.scoring.pooling import LogLinearPool
from coreclean.scoring.signals import neighbor_label_distribution

__all__ = ["SignalSet", "SignalConfig", "NEIGHBOR_PILOT_ABOVE", "NEIGHBOR_PILOT_ROWS", "NEIGHBOR_PILOT_MIN_WEIGHT"]

logger = logging.getLogger(__name__)

NEIGHBOR_PILOT_ABOVE = 250_000
"""Above this many samples a pilot decides whether the full neighbour graph is built (:attr:`SignalSet.neighbor_vote_pays`)."""

NEIGHBOR_PILOT_ROWS = 20_000
"""Samples in that pilot (its graph took 2.6 s on 2 cores at 512 columns)."""

NEIGHBOR_PILOT_MIN_WEIGHT = 0.01
"""The pool weight the vote must earn in the pilot for the full graph to be built."""


class SignalConfig:
    """Settings of the signals; see :class:`coreclean.scoring.ranker.LabelIssueRanker` for their meaning."""

    def __init__(self, *, n_folds: int, C: float, n_neighbors: int, temperature: float | None,
                 max_fit_samples: int | None, radius: float, trusted_weight: float, random_state: int,
                 folds: np.ndarray | None = None, n_components: int | None = None, memory=None,
                 runner=None) -> None:
        self.n_folds = n_folds
        self.C = C
        self.n_neighbors = n_neighbors
        self.temperature = temperature
        self.max_fit_samples = max_fit_samples
        self.radius = radius
        self.trusted_weight = trusted_weight
        self.random_state = random_state
        self.folds = folds
        self.n_components = n_components
        self.memory = memory
        self.runner = runner  # a coreclean._internal.blocks.BlockRunner; None runs here


def fit_projection(features: np.ndarray, n_components: int | None) -> PCAProjection:
    """The PCA projection of ``features`` (label-blind: what ``memory`` caches across processes)."""
    return PCAProjection(n_components).fit(features)


class SignalSet:
    """Lazily computed signals over ``features`` with the *current* labels, weights and trust flags.

    The arrays ``labels``, ``sample_weight`` and ``trusted`` are the caller's and are read at each
    (re)computation, so a caller edits them in place and then calls :meth:`update`. ``given_labels``
    is a copy of the labels as first given, so a relabelled sample shows which confusion it was.
    ``features`` may be None when ``external_probs`` (validated, (n_samples, n_classes)) are given:
    then there are no neighbours and no regressions.
    """

    def __init__(self, features: np.ndarray | None, labels: np.ndarray, sample_weight: np.ndarray, trusted: np.ndarray,
                 n_classes: int, config: SignalConfig, external_probs: np.ndarray | None = None) -> None:
        self.features = features
        self.external_probs = external_probs
        self.labels = labels
        self.given_labels = labels.copy()
        self.sample_weight = sample_weight
        self.trusted = trusted
        self.n_classes = n_classes
        self.config = config
        self.timings: dict[str, float] = {}

    @property
    def n_samples(self) -> int:
        return self.labels.size

    @property
    def fit_weight(self) -> np.ndarray:
        """Weights for model fits: the sample weight, times ``trusted_weight`` for reviewed samples."""
        return self.sample_weight * np.where(self.trusted, self.config.trusted_weight, 1.0)

    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def _require_features(self, what: str) -> np.ndarray:
        if self.features is None:
            raise InputValidationError(f"{what} needs features; pass them with pred_probs, or pick a method that "
                                       "reads only class probabilities.")
        return self.features

    @property
    def model_probs(self) -> np.ndarray:
        """Out-of-sample class probabilities of a model: the external ones if given, else the out-of-fold LR's."""
        return self.external_probs if self.external_probs is not None else self.out_of_fold.probs_

    @cached_property
    def model_features(self) -> np.ndarray:
        """What the logistic regressions see: the top principal components, or the features themselves."""
        self._require_features("a logistic regression")
        start = time.perf_counter()
        fit = _cached(self.config.memory, fit_projection)
        projected = fit(self.features, self.config.n_components).transform(self.features)
        self._timed("projection", start)
        return projected

    @cached_property
    def out_of_fold(self) -> OutOfFoldLogistic:
        """K-fold logistic regressions; ``.probs_`` are the out-of-fold class probabilities."""
        start = time.perf_counter()
        model = OutOfFoldLogistic(n_folds=self.config.n_folds, C=self.config.C, max_fit_samples=self.config.max_fit_samples,
                                  radius=self.config.radius, random_state=self.config.random_state,
                                  runner=self.config.runner)
        model.fit(self.model_features, self.labels, self.fit_weight, n_classes=self.n_classes, folds=self.config.folds)
        self._timed("out_of_fold", start)
        return model

    @cached_property
    def neighbor_vote_pays(self) -> bool:
        """Whether the neighbour vote would add anything to the model's probabilities in the pool.

        Up to :data:`NEIGHBOR_PILOT_ABOVE` samples the answer is yes (the graph is built). Above, a
        pilot answers first (:meth:`neighbor_pilot_weight`): the neighbour graph of a seeded uniform
        sample of :data:`NEIGHBOR_PILOT_ROWS` kept samples, its vote pooled with the model's
        probabilities of those samples (:class:`coreclean.scoring.pooling.LogLinearPool`); the vote
        pays when the pool gives it a weight above :data:`NEIGHBOR_PILOT_MIN_WEIGHT`. The sample's
        neighbours are sparser than the whole set's, so the pilot tends to understate what they carry
        (``python -m benchmarks.neighbor_pilot``): on CIFAR-10 (MobileNetV2, 50k) a 20k pilot weighted
        the vote 0.45 with CIFAR-10N aggre labels (0.54 on all rows) and 0.33 with worse (0.34); on the
        synthetic 200k x 512 of ``benchmarks.scale``, whose neighbours carry no label signal, 0.0, as on
        all rows, where the graph took 24.5 s (``benchmarks.scale`` shows the saving at 1M). Answered
        once per :class:`SignalSet`, so a session does not switch.
        """
        if self.features is None:
            return False
        if self.n_samples <= NEIGHBOR_PILOT_ABOVE:
            return True
        weight = self.neighbor_pilot_weight()
        pays = bool(weight > NEIGHBOR_PILOT_MIN_WEIGHT)
        logger.info("neighbour pilot: vote weight %.3f, %s", weight,
                    "building the full graph" if pays else "the full graph is skipped")
        return pays

    def neighbor_pilot_weight(self) -> float:
        """The pool weight of the neighbour vote on a seeded sample of :data:`NEIGHBOR_PILOT_ROWS` kept samples.

        The sample gets its own neighbour graph; its vote is pooled with the model's probabilities of
        those samples, fitted on their labels. What :attr:`neighbor_vote_pays` compares with
        :data:`NEIGHBOR_PILOT_MIN_WEIGHT`.
        """
        features = self._require_features("the neighbour pilot")
        start = time.perf_counter()
        kept = np.flatnonzero(self.sample_weight > 0)
        rng = np.random.default_rng(self.config.random_state)
        rows = np.sort(rng.choice(kept, size=min(NEIGHBOR_PILOT_ROWS, kept.size), replace=False))
        indices, similarities = knn_graph(np.asarray(features[rows], dtype=np.float32), self.config.n_neighbors,
                                          random_state=self.config.random_state)
        vote = neighbor_label_distribution(indices, similarities, self.labels[rows], self.sample_weight[rows],
                                           self.n_classes, temperature=self.config.temperature)
        pool = LogLinearPool().fit([self.model_probs[rows], vote], self.labels[rows], self.fit_weight[rows])
        self._timed("neighbor_pilot", start)
        return float(pool.weights_[1])

    @cached_property
    def neighbors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, similarities)`` of each sample's nearest neighbours, itself excluded."""
        features = self._require_features("the neighbour vote")
        start = time.perf_counter()
        if self.config.runner is None:  # a local graph is the same whoever computes it: cacheable
            graph = _cached(self.config.memory, knn_graph)(features, self.config.n_neighbors,
                                                           random_state=self.config.random_state)
        else:
            graph = knn_graph(features, self.config.n_neighbors, random_state=self.config.random_state,
                              runner=self.config.runner)
        self._timed("neighbors", start)
        return graph

    def neighbor_probs(self, temperature: float | None) -> np.ndarray:
        """Neighbours' (current) label distribution; cheap, recomputed on every call."""
        indices, similarities = self.neighbors
        return neighbor_label_distribution(indices, similarities, self.labels, self.sample_weight, self.n_classes,
                                           temperature=temperature)

    @cached_property
    def standardizer(self) -> Standardizer:
        """Per-column scaling of :attr:`model_features`."""
        return Standardizer().fit(self.model_features)

    @cached_property
    def in_sample(self):
        """A logistic regression fitted on all kept samples (a sensitivity coreset of them when large)."""
        from coreclean.scoring.linear.coreset import fit_logistic, sample_coreset_rows

        start = time.perf_counter()
        kept = np.flatnonzero(self.sample_weight > 0)
        weight = self.fit_weight
        if self.config.max_fit_samples is not None and kept.size > self.config.max_fit_samples:
            rng = check_random_state(self.config.random_state)
            rows, row_weight = sample_coreset_rows(
                self.model_features, self.labels, weight, kept, m=self.config.max_fit_samples, C=self.config.C,
                standardizer=self.standardizer, n_classes=self.n_classes, random_state=rng, radius=self.config.radius,
                runner=self.config.runner)
        else:
            rows, row_weight = kept, weight[kept]
        model = fit_logistic(self.standardizer.transform(self.model_features[rows]), self.labels[rows], row_weight,
                             C=self.config.C, tol=1e-4)
        self._timed("in_sample", start)
        return model

    def update(self, changed: np.ndarray) -> None:
        """Bring every computed signal up to date after labels/weights/trust of rows ``changed`` changed."""
        if changed.size == 0:
            return
        if "out_of_fold" in self.__dict__:
            start = time.perf_counter()
            self.out_of_fold.refit(self.model_features, self.labels, self.fit_weight, changed)
            self._timed("out_of_fold_update", start)
        self.__dict__.pop("in_sample", None)  # refitted on demand


def _cached(memory, function):
    """``function`` through ``memory`` (a :class:`joblib.Memory`), or as it is without one."""
    return function if memory is None else memory.cache(function)
