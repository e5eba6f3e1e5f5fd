"""How many threads may numeric code use here? One policy for every thread pool in the process.

Why a policy: a coreclean process holds up to five thread pools at once: numpy's and scipy's
OpenBLAS, faiss's OpenBLAS and scikit-learn's OpenMP (one libgomp, shared), torch's OpenMP. Each
pool's idle workers spin on a core for a while after every call instead of sleeping, so when the
pools take turns (a BLAS product, then an OpenMP loss loop, then another library's BLAS) their
spinning workers fight the thread doing the work. Measured:

- 2-core box, load 3-4 from other jobs: five 2,400 x 1,280 logistic-regression folds (what
  ``coreclean classes`` fits) 2.4 s with one thread, 69 s with two;
- 16-core machine, idle: the ranker's five out-of-fold fits at 3,000 x 1,280 took 0.44 s with 3
  threads (this rule), 0.56 s with 1 and 10.8 s with 16 (every core, the old default); at
  50,000 x 512, 2.8 s with 8 (this rule), 5.6 s with 1, 7.8 s with 16 (medians of 3).

Threads pay only while every pool's spinning workers still find a free core, and only when the
problem is big enough to keep them busy between calls. The rule, :func:`choose_threads` (pure)
on :func:`available_cores`:

- ``cores`` = CPUs this process may run on (``os.sched_getaffinity``), capped by a cgroup CPU
  quota (containers), less the share other processes keep busy (the 1-minute load average over
  the machine's CPUs), at least 1;
- ``threads = clamp(n_samples * n_features // WORK_PER_THREAD, 1, cores // 2)``: one thread per
  ``WORK_PER_THREAD`` matrix entries, at most half the free cores (the other half absorbs the
  other pools' spinning); a problem of unknown size counts as small (one thread). On a 2-core box
  that is always one thread; on 16 idle cores, 3 at 3,000 x 1,280 and 8 at 50,000 x 512.

:func:`limit_threads` applies it (or an explicit count, e.g. ``--threads``) to every pool loaded:
BLAS and OpenMP through threadpoolctl, plus ``torch.set_num_threads`` and
``faiss.omp_set_num_threads`` when those modules are loaded. An explicit count wins over the
automatic choice of any block nested inside it.

One stage is the exception: the approximate neighbour search (faiss's IVF-PQ index: training,
filling and search) is a few long OpenMP regions, every thread busy until each ends and no other
pool taking turns with them, so it gets every free core: :func:`graph_search_threads` /
:func:`limit_graph_search_threads`. The kNN graph of 200,000 x 512 on the idle 2-core box: 40.5
and 40.4 s with one thread, 23.7 and 23.9 s with two (interleaved). Under load the free cores, and
so the count, drop.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from coreclean.exceptions import InputValidationError

__all__ = ["limit_threads", "choose_threads", "available_cores", "WORK_PER_THREAD", "graph_search_threads",
           "limit_graph_search_threads"]

#: Matrix entries (n_samples x n_features) each thread must have to pay for itself (see the module docstring).
WORK_PER_THREAD = 1_000_000

_explicit_cap: contextvars.ContextVar[int | None] = contextvars.ContextVar("coreclean_thread_cap", default=None)


def choose_threads(n_samples: int | None, n_features: int | None, cores: int) -> int:
    """Threads for a problem of ``n_samples`` x ``n_features`` on ``cores`` free cores: in 1..max(cores // 2, 1).

    One thread per :data:`WORK_PER_THREAD` matrix entries, at most half the cores; a problem of
    unknown size (None) gets one thread, never far from the best where more would be the worst.
    """
    if n_samples is None or n_features is None:
        return 1
    by_size = (int(n_samples) * int(n_features)) // WORK_PER_THREAD
    return max(1, min(int(cores) // 2, by_size))


def usable_cores() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup CPU quota (>= 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return cores


def idle_cores(window: float = 0.1, stat: Path = Path("/proc/stat")) -> float | None:
    """CPUs not used by other processes over the next ``window`` seconds, this one asleep meanwhile; None if unknown.

    Read from the kernel's CPU counters (``/proc/stat``: idle + iowait share of all CPU time), so,
    unlike the load average, it does not count this process's own recent work as another job's.
    This process's own CPU time in the window counts as free too: right after a parallel region,
    its BLAS and OpenMP workers spin for a while before they sleep, and on an idle 2-core box that
    read as one busy core and gave a million-row neighbour search one thread (issue #13).
    """
    def counters() -> tuple[int, int, int]:
        values = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:9]]
        return values[3] + values[4], sum(values), _own_cpu_ticks()

    try:
        idle_before, total_before, own_before = counters()
        time.sleep(window)
        idle_after, total_after, own_after = counters()
    except (OSError, ValueError, IndexError):
        return None
    if total_after <= total_before:
        return None
    free = (idle_after - idle_before) + max(0, own_after - own_before)
    cpus = os.cpu_count() or 1
    return min(float(cpus), cpus * free / (total_after - total_before))


def _own_cpu_ticks() -> int:
    """CPU time of every thread of this process so far, in the kernel's clock ticks (``/proc/stat``'s unit)."""
    times = os.times()
    return round((times.user + times.system) * os.sysconf("SC_CLK_TCK"))


def available_cores() -> int:
    """Cores this process can use now: affinity, capped by a cgroup CPU quota, less what other jobs keep busy (>= 1)."""
    cores = usable_cores()
    try:
        busy_share = os.getloadavg()[0] / (os.cpu_count() or cores)
    except OSError:
        busy_share = 0.0
    return max(1, round(cores * (1.0 - min(1.0, busy_share))))


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs the cgroup may use (quota / period), or None when unlimited or unknown."""
    try:
        text = (root / "cpu.max").read_text().split()  # cgroup v2: "max 100000" or "200000 100000"
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v1
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def limit_threads(n_threads: int | None = None, *, n_samples: int | None = None,
                  n_features: int | None = None) -> Iterator[int]:
    """Run the block with every BLAS/OpenMP/torch/faiss pool at one thread count; yields that count.

    ``n_threads`` None: the automatic rule (:func:`choose_threads` of ``n_samples`` x ``n_features``
    on :func:`available_cores`), unless an enclosing block was given an explicit count, which then
    holds. An explicit ``n_threads`` (>= 1) is used as given. scikit-learn is imported first so its
    OpenMP runtime (which faiss shares) is loaded, and so limited: threadpoolctl only reaches
    runtimes already loaded.
    """
    if n_threads is not None:
        if isinstance(n_threads, bool) or int(n_threads) != n_threads or n_threads < 1:
            raise InputValidationError(f"n_threads must be a whole number >= 1 (or None: automatic); got {n_threads!r}.")
        count, token = int(n_threads), _explicit_cap.set(int(n_threads))
    else:
        cap = _explicit_cap.get()
        count = cap if cap is not None else choose_threads(n_samples, n_features, available_cores())
        token = None
    try:
        with _pools_limited(count):
            yield count
    finally:
        if token is not None:
            _explicit_cap.reset(token)


@contextlib.contextmanager
def _pools_limited(count: int) -> Iterator[None]:
    import sklearn  # noqa: F401 - its __init__ loads sklearn's OpenMP runtime, so the limit reaches it
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    faiss = sys.modules.get("faiss")
    torch_before = torch.get_num_threads() if torch is not None else None
    faiss_before = faiss.omp_get_max_threads() if faiss is not None else None
    with threadpool_limits(limits=count):
        if torch is not None:
            torch.set_num_threads(count)
        if faiss is not None:
            faiss.omp_set_num_threads(count)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(torch_before)
            if faiss is not None:
                faiss.omp_set_num_threads(faiss_before)


def graph_search_threads(n_samples: int, n_features: int, cores: int) -> int:
    """Threads for one long neighbour-graph build or search of ``n_samples`` x ``n_features``: in 1..max(cores, 1).

    One thread per :data:`WORK_PER_THREAD` entries, up to every free core (not half: no other pool
    spins beside a single OpenMP region; see the module docstring).
    """
    return max(1, min(int(cores), (int(n_samples) * int(n_features)) // WORK_PER_THREAD))


@contextlib.contextmanager
def limit_graph_search_threads(n_samples: int, n_features: int) -> Iterator[int]:
    """Run the block with faiss's OpenMP threads at :func:`graph_search_threads` on the cores idle right now.

    The free cores are :func:`idle_cores` (measured over 0.1 s, within :func:`usable_cores`): the
    1-minute load average of a process that has been working counts its own thread as another
    job's, which on a 2-core box left the search one thread. Where the counters cannot be read,
    :func:`available_cores`. An explicit count from an enclosing :func:`limit_threads`
    (``--threads``) holds instead. Yields the count; restores faiss's previous count on leaving.
    """
    import faiss

    cap = _explicit_cap.get()
    if cap is not None:
        count = cap
    elif graph_search_threads(n_samples, n_features, usable_cores()) == 1:
        count = 1  # too small, or one core: nothing to measure
    else:
        idle = idle_cores()
        free = available_cores() if idle is None else max(1, min(usable_cores(), round(idle)))
        count = graph_search_threads(n_samples, n_features, free)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield count
    finally:
        faiss.omp_set_num_threads(before)
