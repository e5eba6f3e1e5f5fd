"""How many threads may numeric code use here? A cap on OpenMP/BLAS pools for a block of work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["limit_threads"]


@contextlib.contextmanager
def limit_threads(n_threads: int | None, *, n_samples: int | None = None,
                  n_features: int | None = None) -> Iterator[None]:
    """Cap OpenMP/BLAS threads at ``n_threads`` inside the block (None: leave them alone).

    On a busy machine, scikit-learn's OpenMP loss loops and OpenBLAS spin on cores other jobs
    hold: a 1,797 x 512 logistic regression took 6.4 s with 2 threads and 0.17 s with 1 on a
    2-core box at load 6.7. scikit-learn is imported first so its OpenMP runtime is loaded (and so
    limited): threadpoolctl only limits runtimes already loaded. ``n_samples`` and ``n_features``
    describe the work inside the block (for the automatic policy).
    """
    if n_threads is None:
        yield
        return
    import sklearn.linear_model  # noqa: F401 - loads sklearn's OpenMP runtime so the limit reaches it
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(n_threads)):
        yield
