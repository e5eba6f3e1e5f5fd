"""Every way coreclean can order samples for review, behind one signature, in one registry.

A ranker is ``fn(signals: SignalSet, rng: Generator) -> RankerOutput``: scores where higher means
review sooner, and class probabilities where the ranker has them (for suggested labels). The
benchmark harness loops over :data:`REGISTRY`; :class:`coreclean.scoring.ranker.LabelIssueRanker`
picks one by name. Baselines are here so that they share the default's folds and neighbours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from coreclean.scoring.confident_joint import true_label_posterior
from coreclean.scoring.noise_prior import estimate_noise_structure
from coreclean.scoring.pooling import LogLinearPool
from coreclean.scoring.signal_set import SignalSet
from coreclean.scoring.signals import normalized_margin_score, self_confidence_score

__all__ = ["RankerOutput", "REGISTRY", "register_ranker", "DEFAULT_METHOD", "ABLATIONS", "PROBABILITY_RANKERS"]

DEFAULT_METHOD = "coreclean"
#: Registered rankers that are the default with a part removed (to measure that part), not baselines.
ABLATIONS = frozenset({"pooled_confidence"})
#: Rankers that can work from class probabilities alone (``pred_probs`` with no features).
PROBABILITY_RANKERS = frozenset({"coreclean", "pooled_confidence", "self_confidence", "normalized_margin", "random"})


@dataclass(frozen=True)
class RankerOutput:
    """Scores (higher = review sooner), and class probabilities if the ranker has them.

    ``probs`` are ``P(k | x)``, blind to the sample's own label (the confident joint needs that);
    ``posterior`` are ``P(true = k | x, given label)`` where the ranker has them (better suggestions).
    ``score_under(probs_rows, labels)``, where the score is a function of those label-blind
    probabilities, gives it for rows of ``probs`` under any labels: the score a reviewed sample would
    have now, unreviewed, under the label it was shown with.
    """

    scores: np.ndarray
    probs: np.ndarray | None = None
    posterior: np.ndarray | None = None
    score_under: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


Ranker = Callable[[SignalSet, np.random.Generator], RankerOutput]
REGISTRY: dict[str, Ranker] = {}


def register_ranker(name: str) -> Callable[[Ranker], Ranker]:
    """Decorator adding a ranker to :data:`REGISTRY` under ``name``; refuses duplicates."""

    def decorator(fn: Ranker) -> Ranker:
        if name in REGISTRY:
            raise ValueError(f"a ranker is already registered under the name {name!r}")
        REGISTRY[name] = fn
        return fn

    return decorator


def pooled_probs(signals: SignalSet) -> np.ndarray:
    """Log-linear pool of the model's probabilities and the similarity-weighted kNN vote, fitted on the given labels.

    The model is the out-of-fold LR, or the caller's own probabilities; with no features (so no
    neighbours) there is nothing to pool and those probabilities are returned as they are. Where a
    pilot finds that the vote would earn no weight (:attr:`SignalSet.neighbor_vote_pays`, above
    250k samples) the model's probabilities are pooled alone, which is what the pool with a
    zero-weight vote gives, without building the graph.
    """
    if signals.features is None:
        return signals.model_probs
    sources = [signals.model_probs]
    if signals.neighbor_vote_pays:
        sources.append(signals.neighbor_probs(signals.config.temperature))
    pool = LogLinearPool().fit(sources, signals.labels, signals.fit_weight)
    return pool.predict_proba(sources)


@register_ranker("coreclean")
def _coreclean(signals: SignalSet, rng: np.random.Generator) -> RankerOutput:
    """Default: the posterior probability that the given label is wrong.

    The pooled LR + kNN probabilities are combined with the noise estimated among the samples not
    yet reviewed (:func:`coreclean.scoring.confident_joint.true_label_posterior`), so each round's fixes
    lower the prior of the confusions they removed. Which confusions the noise favours is read from
    confident disagreements and from the errors reviewers have confirmed, shrunk toward uniform as
    far as the data allow (:mod:`coreclean.scoring.noise_prior`): pair flips get a strong prior, uniform
    noise a flat one, and counts that are about as many each way (a model's ambiguity, or chance) no trust:
    the prior then ranks as no prior does.
    """
    probs = pooled_probs(signals)
    unreviewed = (signals.sample_weight > 0) & ~signals.trusted
    corrected = signals.trusted & (signals.labels != signals.given_labels)
    known_flips = np.zeros((signals.n_classes,) * 2)
    np.add.at(known_flips, (signals.given_labels[corrected], signals.labels[corrected]), 1.0)
    if unreviewed.any():
        joint = estimate_noise_structure(probs, signals.labels, sample_weight=unreviewed.astype(np.float64),
                                         known_flips=known_flips).joint
    else:
        joint = np.zeros((signals.n_classes,) * 2)
    posterior = true_label_posterior(probs, signals.labels, joint)
    return RankerOutput(self_confidence_score(posterior, signals.labels), probs, posterior,
                        score_under=partial(_posterior_score, joint))


def _posterior_score(joint: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The default's score of rows with label-blind ``probs`` under ``labels``, with the noise ``joint`` fixed."""
    return self_confidence_score(true_label_posterior(probs, labels, joint), labels)


@register_ranker("pooled_confidence")
def _pooled_confidence(signals: SignalSet, rng: np.random.Generator) -> RankerOutput:
    """Ablation of the default without the noise prior: self-confidence of the pooled probabilities."""
    probs = pooled_probs(signals)
    return RankerOutput(self_confidence_score(probs, signals.labels), probs, score_under=self_confidence_score)


@register_ranker("random")
def _random(signals: SignalSet, rng: np.random.Generator) -> RankerOutput:
    """Review in random order (the seed articles' baseline)."""
    return RankerOutput(rng.random(signals.n_samples))


@register_ranker("self_confidence")
def _self_confidence(signals: SignalSet, rng: np.random.Generator) -> RankerOutput:
    """cleanlab's self-confidence on the model's probabilities (out-of-fold LR, or the caller's own)."""
    probs = signals.model_probs
    return RankerOutput(self_confidence_score(probs, signals.labels), probs, score_under=self_confidence_score)


@register_ranker("normalized_margin")
def _normalized_margin(signals: SignalSet, rng: np.random.Generator) -> RankerOutput:
    """cleanlab's normalised margin on the model's probabilities (out-of-fold LR, or the caller's own)."""
    probs = signals.model_probs
    return RankerOutput(normalized_margin_score(probs, signals.labels), probs, score_under=normalized_margin_score)


@register_ranker("knn_disagreement")
def _knn_disagreement(signals: SignalSet, rng: np.random.Generator) -> RankerOutput:
    """Share of the k nearest neighbours (cosine, self excluded, equal votes) whose label differs."""
    probs = signals.neighbor_probs(None)
    return RankerOutput(self_confidence_score(probs, signals.labels), probs, score_under=self_confidence_score)


@register_ranker("in_sample_loss")
def _in_sample_loss(signals: SignalSet, rng: np.random.Generator) -> RankerOutput:
    """Loss of the given label under a model that saw it: s_i(0) of the local sensitivity."""
    from coreclean.scoring.linear.standardize import predict_proba_chunked

    probs = predict_proba_chunked(signals.in_sample, signals.model_features, np.arange(signals.n_samples),
                                  signals.standardizer, signals.n_classes)
    return RankerOutput(self_confidence_score(probs, signals.labels), probs)


@register_ranker("local_sensitivity")
def _local_sensitivity(signals: SignalSet, rng: np.random.Generator) -> RankerOutput:
    """In-sample local sensitivity s_i(r) (method.md §3): loss plus r·√leverage, a valid bound."""
    from coreclean.scoring.linear.standardize import StandardizedRows
    from coreclean.scoring.linear.coreset import theta_from_model
    from coreclean.scoring.linear.sensitivity import local_sensitivity

    theta, C = theta_from_model(signals.in_sample, signals.n_classes, signals.config.C)
    rows = StandardizedRows(signals.model_features, np.arange(signals.n_samples), signals.standardizer)
    bound = local_sensitivity(rows, signals.labels, signals.sample_weight, theta, C=C, radius=signals.config.radius)
    return RankerOutput(bound.sensitivity)


def class_leverage_scores(block: np.ndarray) -> np.ndarray:
    """Row leverages ``‖U_i‖²`` of ``block`` (its SVD's left factor), via the Gram matrix when it has full rank.

    ``‖U_i‖² = z_iᵀ (ZᵀZ)⁻¹ z_i``: an eigendecomposition of the (d+1)² Gram matrix gives the same
    scores (to ~1e-13) ten times faster than the SVD of a (n_c, d+1) CIFAR-10 class at d = 1280
    (205 s per call at 50k on 2 cores before). A rank-deficient block keeps the SVD, whose U spans
    only the block's column space.
    """
    if block.shape[0] > block.shape[1]:
        eigenvalues, eigenvectors = np.linalg.eigh(block.T @ block)
        if eigenvalues.min() > eigenvalues.max() * 1e-12:
            return np.square((block @ eigenvectors) / np.sqrt(eigenvalues)).sum(axis=1)
    return np.square(np.linalg.svd(block, full_matrices=False)[0]).sum(axis=1)


@register_ranker("class_leverage")
def _class_leverage(signals: SignalSet, rng: np.random.Generator) -> RankerOutput:
    """DataHeroes-style per-class leverage: ‖U_i‖² of the class's SVD (plus a constant column) + 2 w_i / W_c."""
    scores = np.zeros(signals.n_samples)
    for label in np.unique(signals.labels):
        members = np.flatnonzero((signals.labels == label) & (signals.sample_weight > 0))
        if members.size == 0:
            continue
        block = np.hstack([np.asarray(signals.features[members], dtype=np.float64), np.ones((members.size, 1))])
        weight = signals.sample_weight[members]
        scores[members] = class_leverage_scores(block) + 2.0 * weight / weight.sum()
    return RankerOutput(scores)
