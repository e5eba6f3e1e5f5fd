"""Local sensitivity of each sample's share of the logistic loss, around a fitted model.

For the multinomial logistic loss ``L(θ) = Σ_i w_i f_i(θ)``, ``f_i = -log softmax(Θ x̃_i)_{y_i}``
(``x̃`` = standardised features plus a constant 1), and the ellipsoid
``Θ_r = {θ : Σ_k (θ_k - θ̂_k)ᵀ A (θ_k - θ̂_k) ≤ r²}`` with ``A = X̃ᵀ diag(w·c) X̃ + λ I``
(``c_i = (1 - Σ_k p_ik²) / K``, the average curvature of the K class blocks of the Hessian;
``λ = 1 / C``), every ``θ ∈ Θ_r`` satisfies

    w_i f_i(θ) / L(θ) ≤ s_i(r) = w_i (f_i(θ̂) + √2 · r · √h_i) / D(r),   h_i = x̃_iᵀ A⁻¹ x̃_i,

because ``f_i`` is √2-Lipschitz in the logits and ``|Δθ_kᵀ x̃_i| ≤ ‖Δθ_k‖_A √h_i``; and, θ̂ minimising
``L(θ) + λ/2 ‖W‖²`` (the intercept unpenalised, as in scikit-learn), ``L(θ) ≥ D(r) = L(θ̂) − λ r ‖Ŵ‖_{A⁻¹} − r²/2``.
This is method.md §3 written for K classes. The label enters only through ``f_i(θ̂)``; ``h_i`` is
label-blind leverage. A dropped sample (w_i = 0) has sensitivity 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.special import log_softmax

from coreclean.exceptions import InputValidationError

__all__ = ["LocalSensitivity", "local_sensitivity", "augmented", "multinomial_losses", "LossRegion", "gram_part",
           "loss_region", "bound_part", "leverage_sketch", "sketched_bound_part"]

_CHUNK_ROWS = 16384
_SQRT2 = float(np.sqrt(2.0))


@dataclass(frozen=True)
class LocalSensitivity:
    """The result of :func:`local_sensitivity`.

    Attributes
    ----------
    sensitivity : ndarray of shape (n_samples,)
        Upper bounds ``s_i(r)`` on each sample's share of the loss over ``Θ_r``.
    total : float
        ``S(r) = Σ s_i(r)``, which drives the coreset size.
    radius : float
        ``r``, the ellipsoid radius in the ``A`` norm.
    losses : ndarray of shape (n_samples,)
        ``f_i(θ̂)``, the unweighted loss of each sample's given label at the fit.
    leverage : ndarray of shape (n_samples,)
        ``h_i = x̃_iᵀ A⁻¹ x̃_i``.
    denominator : float
        ``D(r)``, the lower bound of the total loss over ``Θ_r``.
    curvature_factor : ndarray of shape (n_features + 1, n_features + 1)
        Lower Cholesky factor of ``A`` (to draw parameters inside ``Θ_r``).
    """

    sensitivity: np.ndarray
    total: float
    radius: float
    losses: np.ndarray
    leverage: np.ndarray
    denominator: float
    curvature_factor: np.ndarray


def augmented(standardized: np.ndarray) -> np.ndarray:
    """Append the constant column that carries the intercept."""
    return np.hstack([standardized, np.ones((standardized.shape[0], 1), dtype=standardized.dtype)])


def multinomial_losses(x_aug: np.ndarray, labels: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``f_i(θ) = -log softmax(θ x̃_i)_{y_i}`` for ``theta`` of shape (n_classes, n_features + 1)."""
    logits = x_aug.astype(np.float64) @ theta.T
    return -log_softmax(logits, axis=1)[np.arange(labels.size), labels]


def local_sensitivity(
    standardized: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray,
    theta: np.ndarray,
    *,
    C: float,
    radius: float,
) -> LocalSensitivity:
    """Sensitivity bounds ``s_i(r)`` of every row around the fit ``theta``; see the module docstring.

    Parameters
    ----------
    standardized : ndarray of shape (n_samples, n_features)
        Standardised features (the model's input space), float32 or float64.
    labels : ndarray of shape (n_samples,), int
        Class index of each row, 0..n_classes-1 (columns of ``theta``'s rows).
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights w_i.
    theta : ndarray of shape (n_classes, n_features + 1)
        Coefficients with the intercept as last column, minimising ``Σ w_i f_i + (1/2C)‖W‖²``.
    C : float
        Inverse regularisation strength the fit used (λ = 1/C).
    radius : float
        Relative size of the region: ``r = sqrt(2 · radius · L(θ̂))``, i.e. parameters whose loss
        may rise by about ``radius·L(θ̂)`` in the quadratic approximation.

    Raises
    ------
    InputValidationError
        If the region is so large that the lower bound of the loss ``D(r)`` is not positive.
    """
    gram, total_loss = gram_part(standardized, labels, sample_weight, theta)
    region = loss_region(gram, total_loss, theta, C=C, radius=radius)
    sensitivity, losses, leverage = bound_part(standardized, labels, sample_weight, theta, region)
    return LocalSensitivity(
        sensitivity=sensitivity,
        total=float(sensitivity.sum()),
        radius=region.radius,
        losses=losses,
        leverage=leverage,
        denominator=region.denominator,
        curvature_factor=region.lower,
    )


@dataclass(frozen=True)
class LossRegion:
    """The ellipsoid ``Θ_r`` and the loss lower bound on it: what every row's bound needs from all rows."""

    lower: np.ndarray
    radius: float
    denominator: float


def gram_part(standardized, labels: np.ndarray, sample_weight: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, float]:
    """``(Σ_i w_i c_i x̃_i x̃_iᵀ, Σ_i w_i f_i(θ̂))`` over these rows: the parts of ``A`` and ``L(θ̂)`` they add.

    Sums over row blocks add up to the sums over all rows (how an engine splits the first pass).
    """
    n_samples, n_features = standardized.shape
    n_classes = theta.shape[0]
    gram = np.zeros((n_features + 1, n_features + 1))
    total_loss = 0.0
    for start in range(0, n_samples, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n_samples)
        x_aug = augmented(np.asarray(standardized[start:stop], dtype=np.float64))
        log_probs = log_softmax(x_aug @ theta.T, axis=1)
        total_loss += float(sample_weight[start:stop] @ -log_probs[np.arange(stop - start), labels[start:stop]])
        curvature = (1.0 - np.exp(2.0 * log_probs).sum(axis=1)) / n_classes
        gram += (x_aug * (sample_weight[start:stop] * curvature)[:, None]).T @ x_aug
    return gram, total_loss


def loss_region(gram: np.ndarray, total_loss: float, theta: np.ndarray, *, C: float, radius: float) -> LossRegion:
    """``Θ_r`` from the summed :func:`gram_part` of every row; see :func:`local_sensitivity` for the arguments.

    Raises
    ------
    InputValidationError
        If the region is so large that the lower bound of the loss ``D(r)`` is not positive.
    """
    lam = 1.0 / C
    factor = cho_factor(gram + lam * np.eye(gram.shape[0]), lower=True)
    r = float(np.sqrt(2.0 * radius * total_loss))
    coef = theta.copy()
    coef[:, -1] = 0.0  # the intercept is not penalised
    coef_norm = float(np.sqrt(np.sum(coef.T * cho_solve(factor, coef.T))))
    denominator = total_loss - lam * r * coef_norm - r * r / 2.0
    if denominator <= 0:
        raise InputValidationError(
            f"radius={radius} is too large: the loss lower bound D(r) = {denominator:.3g} is not positive. Use a smaller radius."
        )
    return LossRegion(lower=np.tril(factor[0]), radius=r, denominator=denominator)


def bound_part(standardized, labels: np.ndarray, sample_weight: np.ndarray, theta: np.ndarray,
               region: LossRegion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(s_i(r), f_i(θ̂), h_i)`` of these rows inside ``region`` (each row's bound needs only itself and the region)."""
    n_samples = standardized.shape[0]
    losses = np.empty(n_samples, dtype=np.float64)
    leverage = np.empty(n_samples, dtype=np.float64)
    for start in range(0, n_samples, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n_samples)
        x_aug = augmented(np.asarray(standardized[start:stop], dtype=np.float64))
        losses[start:stop] = -log_softmax(x_aug @ theta.T, axis=1)[np.arange(stop - start), labels[start:stop]]
        leverage[start:stop] = np.square(solve_triangular(region.lower, x_aug.T, lower=True)).sum(axis=0)
    sensitivity = sample_weight * (losses + _SQRT2 * region.radius * np.sqrt(leverage)) / region.denominator
    return sensitivity, losses, leverage


def leverage_sketch(region: LossRegion, n_rows: int = 32, *, random_state: int = 0) -> np.ndarray:
    """``G L⁻¹`` for a Gaussian ``G`` of ``n_rows`` rows (scaled by 1/√n_rows), float32: ``‖(G L⁻¹) x̃‖² ≈ h``.

    A Johnson-Lindenstrauss sketch of the leverage (Drineas et al., 2012): each row's
    ``h_i = ‖L⁻¹ x̃_i‖²`` costs ``d²`` exactly but ``n_rows · d`` sketched, with a relative error of
    about ``√(2 / n_rows)`` (25% at 32 rows, so 12% on ``√h_i``).
    """
    gaussian = np.random.default_rng(random_state).standard_normal((n_rows, region.lower.shape[0])) / np.sqrt(n_rows)
    return np.ascontiguousarray(solve_triangular(region.lower, gaussian.T, lower=True, trans="T").T, dtype=np.float32)


def sketched_bound_part(features, rows: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray, theta: np.ndarray,
                        region: LossRegion, sketch: np.ndarray, standardizer) -> np.ndarray:
    """:func:`bound_part`'s ``s_i(r)`` of the raw rows ``features[rows]``, with the leverage from :func:`leverage_sketch`.

    For drawing a coreset, where any positive probabilities keep the weighted loss unbiased and the
    bound only sets the variance: at 800k training rows of 512 columns the exact leverage is a
    triangular solve of ~2·10¹¹ float64 operations per fold model, the sketch ~3·10¹⁰ in float32.
    ``theta`` and ``sketch`` act on standardised rows; ``standardizer`` is folded into the products
    (:meth:`~coreclean.scoring.linear.standardize.Standardizer.raw_linear`), so no standardised copy is made.
    """
    sensitivity = np.empty(rows.size, dtype=np.float64)
    (coef, intercept), (sketch_coef, sketch_intercept) = [
        (np.ascontiguousarray(c.T), b) for c, b in (standardizer.raw_linear(theta[:, :-1], theta[:, -1]),
                                                    standardizer.raw_linear(sketch[:, :-1], sketch[:, -1]))]
    for start in range(0, rows.size, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, rows.size)
        block = np.asarray(features[rows[start:stop]], dtype=np.float32)
        logits = (block @ coef).astype(np.float64) + intercept
        loss = -log_softmax(logits, axis=1)[np.arange(stop - start), labels[start:stop]]
        leverage = np.square((block @ sketch_coef).astype(np.float64) + sketch_intercept).sum(axis=1)
        sensitivity[start:stop] = loss + _SQRT2 * region.radius * np.sqrt(leverage)
    return sample_weight * sensitivity / region.denominator
