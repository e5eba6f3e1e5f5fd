"""Fuse class-probability estimates that fail differently: log-linear pooling fitted on the given labels.

``p(k | x) ∝ exp(Σ_s a_s log p_s(k | x) + c_k)``. The weights ``a`` and class offsets ``c`` maximise
the likelihood of the *given* labels under the pooled distribution, with reviewed (trusted)
samples counted more. No ground truth is needed: a signal that predicts the labels better earns a
larger weight, so a fusion learned on one dataset is not carried blindly to another. Every input
must already be out of sample (out-of-fold model, leave-self-out neighbours), or the fit rewards
memorisation.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from coreclean.scoring.signals import PROB_FLOOR

__all__ = ["LogLinearPool", "MAX_POOL_FIT_ROWS"]

#: The pool's K + S parameters are fitted on at most this many rows (a seeded uniform sample of the
#: rows of weight 1, plus every row of another weight); at 1M rows the fit on all of them took 8.8 s.
MAX_POOL_FIT_ROWS = 200_000


class LogLinearPool:
    """Log-linear pooling of S probability estimates over K classes.

    Parameters
    ----------
    offset_penalty : float
        L2 penalty on the class offsets ``c`` (keeps them near 0 when a class is small).

    Attributes
    ----------
    weights_ : ndarray of shape (n_sources,)
    offsets_ : ndarray of shape (n_classes,)
    """

    def __init__(self, *, offset_penalty: float = 1e-3) -> None:
        self.offset_penalty = offset_penalty

    @staticmethod
    def _stack(sources: list[np.ndarray]) -> np.ndarray:
        return np.stack([np.log(np.maximum(p, PROB_FLOOR)) for p in sources], axis=0)

    def fit(self, sources: list[np.ndarray], labels: np.ndarray, sample_weight: np.ndarray) -> "LogLinearPool":
        """Fit ``weights_`` and ``offsets_`` by weighted maximum likelihood of ``labels``.

        Above :data:`MAX_POOL_FIT_ROWS` rows the likelihood is estimated on a seeded uniform sample
        of the rows of weight 1 (reweighted to their total) plus every row of another weight
        (reviewed samples), the same sample at every call on the same rows.
        """
        plain = np.flatnonzero(sample_weight == 1.0)
        if labels.size > MAX_POOL_FIT_ROWS and plain.size > MAX_POOL_FIT_ROWS // 2:
            room = max(MAX_POOL_FIT_ROWS - (labels.size - plain.size), MAX_POOL_FIT_ROWS // 2)
            chosen = np.sort(np.random.default_rng(0).choice(plain, size=room, replace=False))
            rows = np.sort(np.concatenate([chosen, np.flatnonzero(sample_weight != 1.0)]))
            weight = sample_weight[rows].astype(np.float64)
            weight[np.isin(rows, chosen, assume_unique=True)] = plain.size / room
            return self.fit([p[rows] for p in sources], labels[rows], weight)
        logs = self._stack(sources)
        n_sources, n_samples, n_classes = logs.shape
        rows = np.arange(n_samples)
        weight = sample_weight / max(sample_weight.sum(), 1e-12)

        def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
            a, c = params[:n_sources], params[n_sources:]
            log_p = log_softmax(np.tensordot(a, logs, axes=1) + c, axis=1)
            loss = -float(weight @ log_p[rows, labels]) + self.offset_penalty * float(c @ c)
            residual = np.exp(log_p)
            residual[rows, labels] -= 1.0
            residual *= weight[:, None]
            grad_a = np.einsum("snk,nk->s", logs, residual)
            grad_c = residual.sum(axis=0) + 2.0 * self.offset_penalty * c
            return loss, np.concatenate([grad_a, grad_c])

        start = np.concatenate([np.full(n_sources, 1.0 / n_sources), np.zeros(n_classes)])
        bounds = [(0.0, None)] * n_sources + [(None, None)] * n_classes
        result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds)
        self.weights_ = result.x[:n_sources]
        self.offsets_ = result.x[n_sources:]
        return self

    def predict_proba(self, sources: list[np.ndarray]) -> np.ndarray:
        """Pooled class probabilities, shape (n_samples, n_classes)."""
        logits = np.tensordot(self.weights_, self._stack(sources), axes=1) + self.offsets_
        return np.exp(log_softmax(logits, axis=1))
