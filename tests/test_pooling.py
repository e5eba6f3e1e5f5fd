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


def test_large_inputs_fit_on_a_fixed_sample_that_keeps_every_reviewed_row(monkeypatch):
    """Above MAX_POOL_FIT_ROWS the fit reads a seeded sample (the same at every call) plus every row of another weight."""
    import coreclean.scoring.pooling as pooling

    rng = np.random.default_rng(2)
    labels, good, noise = _sources(rng, n=6000)
    weight = np.ones(labels.size)
    weight[:50] = 2.0  # reviewed rows: where the noise source is right, and counted twice
    noise[:50] = good[:50]
    full = LogLinearPool().fit([good, noise], labels, weight)
    seen = []
    fit = LogLinearPool.fit

    def spy(self, sources, labels_, weight_):
        seen.append((labels_.size, float(weight_.sum()), int(np.sum(weight_ == 2.0))))
        return fit(self, sources, labels_, weight_)

    monkeypatch.setattr(pooling, "MAX_POOL_FIT_ROWS", 1000)
    monkeypatch.setattr(LogLinearPool, "fit", spy)
    first = LogLinearPool().fit([good, noise], labels, weight)
    again = LogLinearPool().fit([good, noise], labels, weight)
    assert seen[0] == seen[2]  # the outer calls
    assert seen[1][0] == 1000 and seen[1][2] == 50  # 950 sampled rows plus the 50 reviewed ones
    assert np.isclose(seen[1][1], weight.sum())  # the sample is reweighted to the rows it stands for
    assert np.array_equal(first.weights_, again.weights_)
    np.testing.assert_allclose(first.weights_, full.weights_, atol=0.15 * np.abs(full.weights_).max())
