"""The local sensitivity bound holds: no sample's loss share in Θ_r exceeds s_i(r)."""

import numpy as np
import pytest

from coreclean.scoring.linear.coreset import fit_logistic, theta_from_model
from coreclean.exceptions import InputValidationError
from coreclean.simulate.noise import inject_noise
from coreclean.scoring.linear.standardize import Standardizer
from coreclean.scoring.linear.sensitivity import augmented, local_sensitivity, multinomial_losses
from conftest import gaussian_blobs


def _mixture(n_classes, n_samples=600, n_features=8, seed=0):
    features, labels = gaussian_blobs(np.random.default_rng(seed), 0, n_features, n_classes, spread=1.5,
                                      n_samples=n_samples)
    noisy, _ = inject_noise(labels, rate=0.1, n_classes=n_classes, random_state=seed)
    return Standardizer().fit(features).transform(features), noisy


def _inside(bound, theta, rng):
    """A parameter drawn uniformly from the ellipsoid Θ_r around ``theta``."""
    direction = rng.standard_normal(theta.shape)
    a_norm = np.sqrt(np.sum(np.square(bound.curvature_factor.T @ direction.T)))
    return theta + direction / a_norm * bound.radius * rng.random() ** (1.0 / direction.size)


def _towards(bound, theta, x_aug, label, probs_row):
    """The boundary point of Θ_r that raises sample i's loss fastest (worst case for the bound)."""
    gradient = np.outer(probs_row - np.eye(theta.shape[0])[label], x_aug)  # d f_i / d theta
    step = np.linalg.solve(bound.curvature_factor @ bound.curvature_factor.T, gradient.T).T  # A^-1 g per class
    a_norm = np.sqrt(np.sum(step * gradient))
    return theta + step / a_norm * bound.radius


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("radius", [0.001, 0.05])
def test_in_sample_sensitivity_bounds_loss_share(n_classes, radius):
    standardized, labels = _mixture(n_classes)
    weight = np.ones(labels.size)
    model = fit_logistic(standardized, labels, weight, C=0.5, tol=1e-10, max_iter=5000)
    theta, C = theta_from_model(model, n_classes, 0.5)
    bound = local_sensitivity(standardized, labels, weight, theta, C=C, radius=radius)
    x_aug = augmented(standardized).astype(np.float64)
    rng = np.random.default_rng(1)
    probs = model.predict_proba(standardized)
    candidates = [_inside(bound, theta, rng) for _ in range(100)]
    candidates += [_towards(bound, theta, x_aug[i], labels[i], probs[i]) for i in np.argsort(-bound.sensitivity)[:20]]
    for point in candidates:
        losses = multinomial_losses(x_aug, labels, point)
        assert losses.sum() >= bound.denominator * (1 - 1e-9)
        share = weight * losses / losses.sum()
        assert np.all(share <= bound.sensitivity * (1 + 1e-9))
    assert bound.total == pytest.approx(bound.sensitivity.sum())
    assert bound.total >= 1.0  # shares sum to one, so their bounds must sum to at least one


def test_dropped_sample_has_zero_sensitivity():
    standardized, labels = _mixture(3)
    weight = np.ones(labels.size)
    weight[:10] = 0.0
    model = fit_logistic(standardized, labels, weight, C=0.5)
    theta, C = theta_from_model(model, 3, 0.5)
    bound = local_sensitivity(standardized, labels, weight, theta, C=C, radius=0.01)
    assert np.all(bound.sensitivity[:10] == 0)
    assert np.all(bound.sensitivity[10:] > 0)


def test_too_large_radius_is_a_clear_error():
    standardized, labels = _mixture(3)
    weight = np.ones(labels.size)
    model = fit_logistic(standardized, labels, weight, C=0.5)
    theta, C = theta_from_model(model, 3, 0.5)
    with pytest.raises(InputValidationError, match="radius"):
        local_sensitivity(standardized, labels, weight, theta, C=C, radius=5.0)
