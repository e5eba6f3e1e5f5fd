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

__all__ = ["MultinomialLogistic"]


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
