"""L2-regularised multinomial logistic regression, fitted with L-BFGS on float32 matrix products.

The objective is scikit-learn's, ``Σ_i w_i f_i(θ) + ‖W‖² / (2C)`` with the intercept unpenalised and
``f_i = -log softmax(W x_i + b)_{y_i}``, for any number of classes (two classes too, as a softmax,
so the sensitivity bound of :mod:`coreclean.scoring.linear.sensitivity` applies to the fit exactly). Why not
scikit-learn's ``LogisticRegression``: not for speed. On one fold of the 50k × 512 ``benchmarks.scale``
matrix (C = 0.01, tol 1e-5, 1 thread) the two reach the same optimum (coefficients within 1.3e-4
of a 0.53 scale) in about the same time: sklearn/ours 1.22, 0.97 and 0.81 in three runs of three
interleaved fits each under load (``benchmarks/library_swaps.py``). What sklearn lacks here: two classes as a softmax (sklearn
fits a sigmoid, a different penalty and optimum, so the bound would not hold), and a warm start
from another model's coefficients (a fold model starts from the previous fold's, a re-fit from the
last fit). Classes absent from the training rows are not modelled (probability 0). Stopping at
``max_iter`` before ``tol`` warns (``ConvergenceWarning``), as scikit-learn does.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

__all__ = ["MultinomialLogistic", "fit_stacked_logistic"]


class MultinomialLogistic:
    """Weighted multinomial logistic regression with scikit-learn's fit/predict_proba habits.

    Parameters
    ----------
    C : float
        Inverse L2 strength on the coefficients (not the intercepts); 0.01, the ranker's default.
    max_iter : int
        L-BFGS iterations at most.
    tol : float
        Stop when the largest gradient entry of the (weight-normalised) objective is below this.

    Attributes
    ----------
    classes_ : ndarray of shape (n_present,)
        Classes seen in ``fit``, sorted.
    coef_ : ndarray of shape (n_present, n_features), float64
    intercept_ : ndarray of shape (n_present,), float64
    n_iter_ : int
    """

    def __init__(self, *, C: float = 0.01, max_iter: int = 300, tol: float = 1e-5) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, features: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None, *,
            warm_start: "MultinomialLogistic | None" = None) -> "MultinomialLogistic":
        """Fit on ``features`` (n_samples, n_features) float32, ``labels`` ints; returns ``self``.

        ``warm_start``: a previous fit to start from (used when it saw the same classes).
        """
        features = np.ascontiguousarray(features, dtype=np.float32)
        weight = np.ones(labels.size) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.classes_, encoded = np.unique(labels, return_inverse=True)
        n_classes, n_features = self.classes_.size, features.shape[1]
        weight_sum = max(float(weight.sum()), 1e-12)
        scaled_weight = weight / weight_sum
        penalty = 1.0 / (self.C * weight_sum)
        rows = np.arange(labels.size)

        def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
            theta = params.reshape(n_classes, n_features + 1)
            coef = theta[:, :-1].astype(np.float32)
            # Products in float32 (the cost), the loss and its sum in float64: float32 rounding in the
            # objective made L-BFGS's line search spin near the optimum.
            logits = (features @ coef.T).astype(np.float64) + theta[:, -1]
            log_probs = log_softmax(logits, axis=1)
            loss = -float(scaled_weight @ log_probs[rows, encoded]) + 0.5 * penalty * float(np.sum(theta[:, :-1] ** 2))
            residual = np.exp(log_probs)
            residual[rows, encoded] -= 1.0
            residual *= scaled_weight[:, None]
            grad = np.empty_like(theta)
            grad[:, :-1] = (residual.T.astype(np.float32) @ features).astype(np.float64) + penalty * theta[:, :-1]
            grad[:, -1] = residual.sum(axis=0)
            return loss, grad.ravel()

        start = np.zeros((n_classes, n_features + 1))
        if warm_start is not None and np.array_equal(warm_start.classes_, self.classes_):
            start[:, :-1], start[:, -1] = warm_start.coef_, warm_start.intercept_
        if n_classes == 1:
            self.coef_, self.intercept_, self.n_iter_ = np.zeros((1, n_features)), np.zeros(1), 0
            return self
        result = minimize(objective, start.ravel(), jac=True, method="L-BFGS-B",
                          options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 64 * np.finfo(float).eps})
        if not result.success and result.nit >= self.max_iter:
            from sklearn.exceptions import ConvergenceWarning

            warnings.warn(f"MultinomialLogistic stopped at max_iter={self.max_iter} before reaching tol={self.tol}; "
                          "raise max_iter, or standardise the features.", ConvergenceWarning, stacklevel=2)
        theta = result.x.reshape(n_classes, n_features + 1)
        self.coef_, self.intercept_, self.n_iter_ = theta[:, :-1].copy(), theta[:, -1].copy(), int(result.nit)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probabilities of ``classes_``, shape (n_samples, n_present)."""
        logits = np.asarray(features, dtype=np.float32) @ self.coef_.T.astype(np.float32) + self.intercept_.astype(np.float32)
        return np.exp(log_softmax(logits.astype(np.float64), axis=1))


_STACK_CHUNK_ROWS = 4096


def fit_stacked_logistic(features: np.ndarray, labels: np.ndarray, fold_weight: np.ndarray, *, n_classes: int, C: float,
                         mean: np.ndarray, scale: np.ndarray, max_iter: int = 200, tol: float = 1e-4,
                         warm_starts: list[MultinomialLogistic | None] | None = None) -> list[MultinomialLogistic]:
    """Fit F logistic regressions at once, model ``f`` on the rows weighted by ``fold_weight[:, f]``.

    Each model is :class:`MultinomialLogistic`'s on the standardised rows ``(features - mean) / scale``
    with weights ``fold_weight[:, f]`` (0 leaves a row out of that model, as K-fold training parts do),
    over all ``n_classes`` (each must have weight in every model). The objectives are separable, so
    the minimiser of their sum is each model's own; one L-BFGS run over all of them reads the rows
    once per evaluation, for all models together, in chunks that stay in cache between the logits and
    the gradient, and multiplies by ``F · n_classes`` columns at a time instead of ``n_classes``
    (a 4,096 x 512 block times 50 columns ran at 48 GFLOP/s here, times 10 columns at 21).
    Standardisation is folded into the coefficients, so the raw (memory-mapped) rows are read as
    they are. Five folds of the 50k x 512 ``benchmarks.scale`` matrix, one thread: 6.0 s here vs
    10.7 s one by one; the out-of-fold stage per size is in ``benchmarks/results/scale_vs_peer.json``.
    Stopping at ``max_iter`` before ``tol`` warns (``ConvergenceWarning``).
    """
    n_samples, n_features = features.shape
    n_models = fold_weight.shape[1]
    width = n_features + 1
    weight_sum = np.maximum(fold_weight.sum(axis=0), 1e-12)
    scaled_weight = np.ascontiguousarray(fold_weight / weight_sum, dtype=np.float64)
    penalty = 1.0 / (C * weight_sum)
    inv_scale = (1.0 / np.asarray(scale, dtype=np.float64))
    mean64 = np.asarray(mean, dtype=np.float64)
    classes = np.arange(n_classes)

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        theta = params.reshape(n_models, n_classes, width)
        coef, intercept = theta[:, :, :-1], theta[:, :, -1]
        raw = coef * inv_scale  # (F, K, d): the same map on raw rows
        raw_t = np.ascontiguousarray(raw.reshape(-1, n_features).T, dtype=np.float32)
        raw_intercept = (intercept - raw @ mean64).ravel()
        loss = 0.0
        grad_raw = np.zeros((n_models * n_classes, n_features))
        grad_intercept = np.zeros((n_models, n_classes))
        for start in range(0, n_samples, _STACK_CHUNK_ROWS):
            stop = min(start + _STACK_CHUNK_ROWS, n_samples)
            block = np.asarray(features[start:stop], dtype=np.float32)
            logits = (block @ raw_t).astype(np.float64)
            logits += raw_intercept
            logits = logits.reshape(stop - start, n_models, n_classes)
            logits -= logits.max(axis=2, keepdims=True)
            residual = np.exp(logits)
            total = residual.sum(axis=2)
            weight = scaled_weight[start:stop]
            rows, own = np.arange(stop - start), labels[start:stop]
            loss -= float(np.sum(weight * (logits[rows, :, own] - np.log(total))))
            residual *= (weight / total)[:, :, None]
            residual[rows, :, own] -= weight
            flat = residual.reshape(stop - start, -1)
            grad_raw += (flat.T.astype(np.float32) @ block)
            grad_intercept += residual.sum(axis=0)
        # back to the standardised coefficients: d/dW = (Rᵀ X_raw - (Σ R) μ) / σ
        grad = np.empty_like(theta)
        grad_coef = (grad_raw.reshape(n_models, n_classes, n_features) - grad_intercept[:, :, None] * mean64) * inv_scale
        grad[:, :, :-1] = grad_coef + penalty[:, None, None] * coef
        grad[:, :, -1] = grad_intercept
        loss += 0.5 * float(np.sum(penalty * np.sum(coef**2, axis=(1, 2))))
        return loss, grad.ravel()

    start = np.zeros((n_models, n_classes, width))
    for f, model in enumerate(warm_starts or [None] * n_models):
        if model is not None and np.array_equal(model.classes_, classes):
            start[f, :, :-1], start[f, :, -1] = model.coef_, model.intercept_
    result = minimize(objective, start.ravel(), jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter, "gtol": tol, "ftol": 64 * np.finfo(float).eps})
    if not result.success and result.nit >= max_iter:
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(f"fit_stacked_logistic stopped at max_iter={max_iter} before reaching tol={tol}.",
                      ConvergenceWarning, stacklevel=2)
    theta = result.x.reshape(n_models, n_classes, width)
    models = []
    for f in range(n_models):
        model = MultinomialLogistic(C=C, max_iter=max_iter, tol=tol)
        model.classes_, model.coef_, model.intercept_ = classes, theta[f, :, :-1].copy(), theta[f, :, -1].copy()
        model.n_iter_ = int(result.nit)
        models.append(model)
    return models
