"""A sensitivity coreset approximates the full logistic loss better than a uniform sample of equal size."""

import numpy as np
import pytest

from coreclean.scoring.linear.coreset import SensitivityCoreset, fit_logistic, theta_from_model
from coreclean.simulate.noise import inject_noise
from coreclean.scoring.linear.sensitivity import augmented, multinomial_losses
from conftest import gaussian_blobs


@pytest.fixture(scope="module")
def noisy_mixture():
    n_classes = 5
    features, labels = gaussian_blobs(np.random.default_rng(0), 0, 10, n_classes, spread=1.5, n_samples=3000)
    noisy, _ = inject_noise(labels, rate=0.05, n_classes=n_classes, random_state=0)
    return features, noisy


def test_coreset_beats_uniform_over_20_seeds(noisy_mixture):
    features, labels = noisy_mixture
    m, C = 300, 1.0
    errors = {"coreset_theta": [], "uniform_theta": [], "coreset_fit": [], "uniform_fit": []}
    for seed in range(20):
        coreset = SensitivityCoreset(m, C=C, radius=0.01, random_state=seed).fit(features, labels)
        x_aug = augmented(coreset.standardizer_.transform(features)).astype(np.float64)
        rng = np.random.default_rng(100 + seed)
        drawn = rng.choice(labels.size, size=m, replace=True)
        uniform_rows, counts = np.unique(drawn, return_counts=True)
        uniform_weights = counts * labels.size / m
        theta = coreset.reference_theta_
        for _ in range(5):  # random parameters inside the region the bound covers
            direction = rng.standard_normal(theta.shape)
            a_norm = np.sqrt(np.sum(np.square(coreset.bound_.curvature_factor.T @ direction.T)))
            point = theta + direction / a_norm * coreset.bound_.radius * rng.random() ** (1 / direction.size)
            losses = multinomial_losses(x_aug, labels, point)
            errors["coreset_theta"].append(abs(coreset.weights_ @ losses[coreset.indices_] / losses.sum() - 1))
            errors["uniform_theta"].append(abs(uniform_weights @ losses[uniform_rows] / losses.sum() - 1))
        # each sample's own fit, judged on the full data
        full = multinomial_losses(x_aug, labels, theta).sum()
        own, _ = theta_from_model(coreset.estimator_, 5, C)
        uniform_model = fit_logistic(x_aug[uniform_rows, :-1], labels[uniform_rows], uniform_weights, C=C)
        uniform_theta, _ = theta_from_model(uniform_model, 5, C)
        errors["coreset_fit"].append(multinomial_losses(x_aug, labels, own).sum() / full - 1)
        errors["uniform_fit"].append(multinomial_losses(x_aug, labels, uniform_theta).sum() / full - 1)
    assert np.median(errors["coreset_theta"]) < 0.8 * np.median(errors["uniform_theta"])
    assert np.median(errors["coreset_fit"]) < 0.6 * np.median(errors["uniform_fit"])


def test_coreset_weights_are_unbiased_for_the_total_weight(noisy_mixture):
    features, labels = noisy_mixture
    totals = [SensitivityCoreset(400, random_state=s).fit(features, labels).weights_.sum() for s in range(10)]
    assert np.mean(totals) == pytest.approx(labels.size, rel=0.1)


def test_predict_proba_shape(noisy_mixture):
    features, labels = noisy_mixture
    coreset = SensitivityCoreset(200, random_state=0).fit(features, labels)
    probs = coreset.predict_proba(features[:7])
    assert probs.shape == (7, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def _coreset_rows(features, labels, weight, train, seed):
    from coreclean.scoring.linear.coreset import sample_coreset_rows
    from coreclean.scoring.linear.standardize import Standardizer

    return sample_coreset_rows(features, labels, weight, train, m=600, C=1.0, standardizer=Standardizer().fit(features),
                               n_classes=5, random_state=seed, radius=0.1)


def test_fit_coreset_estimates_the_full_loss_better_than_uniform(noisy_mixture):
    from coreclean.scoring.linear.standardize import Standardizer

    features, labels = noisy_mixture
    weight = np.ones(labels.size)
    train = np.arange(labels.size)
    standardized = Standardizer().fit(features).transform(features)
    model = fit_logistic(standardized.astype(np.float64), labels, weight, C=1.0)
    losses = -np.log(np.maximum(model.predict_proba(standardized)[train, labels], 1e-12))
    coreset, uniform = [], []
    for seed in range(40):
        rows, row_weight = _coreset_rows(features, labels, weight, train, seed)
        assert rows.size <= 1.1 * 600  # Poisson sampling: at most m rows expected
        coreset.append(row_weight @ losses[rows] / losses.sum())
        drawn = np.random.default_rng(100 + seed).choice(labels.size, size=rows.size)
        uniform.append(losses[drawn].sum() * labels.size / rows.size / losses.sum())
    assert abs(np.mean(coreset) - 1) < 3 * np.std(coreset) / np.sqrt(len(coreset))  # unbiased
    assert np.std(coreset) < np.std(uniform)


def test_fit_coreset_barely_moves_when_a_review_batch_changes_a_few_rows(noisy_mixture):
    # The same seed on nearly the same data must draw nearly the same rows, or a fresh fit after a
    # review batch would differ from the updated one by sampling alone.
    features, labels = noisy_mixture
    weight = np.ones(labels.size)
    train = np.arange(labels.size)
    before, _ = _coreset_rows(features, labels, weight, train, seed=7)
    reviewed = labels.copy()
    reviewed[:20] = (reviewed[:20] + 1) % 5
    dropped = weight.copy()
    dropped[20:40] = 0.0
    after, _ = _coreset_rows(features, reviewed, dropped, np.flatnonzero(dropped > 0), seed=7)
    overlap = np.intersect1d(before, after).size / before.size
    assert overlap > 0.9
    other_seed, _ = _coreset_rows(features, labels, weight, train, seed=8)
    assert np.intersect1d(before, other_seed).size / before.size < overlap


def test_a_pilot_warm_started_from_another_folds_pilot_converges_sooner_to_the_same_coreset(noisy_mixture):
    # The out-of-fold models pass each fold's pilot to the next: two folds share most rows.
    from coreclean.scoring.linear.coreset import sample_coreset_rows
    from coreclean.scoring.linear.standardize import Standardizer

    features, labels = noisy_mixture
    weight = np.ones(labels.size)
    folds = np.arange(labels.size) % 5
    options = dict(m=2000, C=1.0, standardizer=Standardizer().fit(features), n_classes=5, random_state=3, radius=0.1)
    *_, first = sample_coreset_rows(features, labels, weight, np.flatnonzero(folds != 0), return_pilot=True, **options)
    second = np.flatnonzero(folds != 1)
    cold_rows, _, cold = sample_coreset_rows(features, labels, weight, second, return_pilot=True, **options)
    warm_rows, _, warm = sample_coreset_rows(features, labels, weight, second, return_pilot=True, pilot_start=first,
                                             **options)
    assert warm.n_iter_ < cold.n_iter_
    np.testing.assert_allclose(warm.coef_, cold.coef_, atol=0.05 * np.abs(cold.coef_).max())
    assert np.intersect1d(warm_rows, cold_rows).size / cold_rows.size > 0.95
