"""Log-linear pooling (coreclean.scoring.pooling): the fitted weights trust the estimate that is right."""

import numpy as np

from coreclean.scoring.pooling import LogLinearPool


def _sources(rng, n=600, k=3):
    labels = rng.integers(0, k, size=n)
    good = np.full((n, k), 0.1)
    good[np.arange(n), labels] = 0.8  # informative
    noise = rng.dirichlet(np.ones(k), size=n)  # carries nothing
    return labels, good, noise


def test_weights_favour_the_informative_source_and_probabilities_are_proper():
    rng = np.random.default_rng(0)
    labels, good, noise = _sources(rng)
    pool = LogLinearPool().fit([good, noise], labels, np.ones(labels.size))
    assert pool.weights_[0] > 5 * pool.weights_[1] and (pool.weights_ >= 0).all()
    probs = pool.predict_proba([good, noise])
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs.argmax(axis=1) == labels).mean() > 0.95


def test_zero_weight_samples_do_not_count():
    rng = np.random.default_rng(1)
    labels, good, noise = _sources(rng)
    weight = np.ones(labels.size)
    liar = noise.copy()
    liar[: labels.size // 2] = good[: labels.size // 2]  # right only where it will be ignored
    weight[: labels.size // 2] = 0.0
    pool = LogLinearPool().fit([good, liar], labels, weight)
    assert pool.weights_[1] < 0.2 * pool.weights_[0]
