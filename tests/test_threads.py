"""The thread policy: counts follow free cores and problem size, reach every pool, and yield to --threads."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from coreclean._internal import threads
from coreclean._internal.threads import WORK_PER_THREAD, available_cores, choose_threads, limit_threads
from coreclean.exceptions import InputValidationError


def test_small_problems_get_one_thread_whatever_the_cores():
    for cores in (1, 2, 16, 64):
        assert choose_threads(1_797, 64, cores) == 1  # the demo's digits
        assert choose_threads(1_797, 512, cores) == 1
        assert choose_threads(None, None, cores) == 1  # unknown size counts as small


def test_two_cores_always_get_one_thread():
    for size in [(3_000, 1_280), (50_000, 512), (1_000_000, 1_280)]:
        assert choose_threads(*size, 2) == 1  # the 2-core box's 30-60x slowdown with two
        assert choose_threads(*size, 3) == 1


def test_threads_grow_with_problem_size_up_to_the_cores():
    sizes = [(1_000, 512), (3_000, 512), (5_000, 512), (10_000, 512), (50_000, 512), (1_000_000, 512)]
    on_32 = [choose_threads(n, d, 32) for n, d in sizes]
    assert on_32 == sorted(on_32) and on_32[0] == 1 and on_32[-1] == 16
    assert len(set(on_32)) >= 4
    assert choose_threads(50_000, 512, 16) == 8  # the 50k scale run: 8 of 16 cores, measured fastest
    assert choose_threads(3_000, 1_280, 16) == 3
    n = 4 * WORK_PER_THREAD // 100
    assert choose_threads(n, 100, 16) == 4  # one thread per WORK_PER_THREAD entries


def test_threads_follow_cores_for_a_big_problem():
    counts = [choose_threads(1_000_000, 512, cores) for cores in (1, 2, 4, 8, 16, 32)]
    assert counts == [1, 1, 2, 4, 8, 16]  # half the free cores: the rest absorbs the pools' spinning


def test_available_cores_reads_affinity_quota_and_load(monkeypatch, tmp_path):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(threads, "_cgroup_cpu_quota", lambda: None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert available_cores() == 16
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    assert available_cores() == 8  # half the machine is busy with other jobs
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (40.0, 40.0, 40.0))
    assert available_cores() == 1  # overloaded: never below one
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(threads, "_cgroup_cpu_quota", lambda: 2.5)
    assert available_cores() == 2  # a container allowed 2.5 CPUs
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(threads, "_cgroup_cpu_quota", lambda: None)
    assert available_cores() == 2  # pinned to two cores (taskset)


def test_cgroup_quota_files(tmp_path):
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert threads._cgroup_cpu_quota(tmp_path) == 2.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads._cgroup_cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads._cgroup_cpu_quota(v1) == 4.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads._cgroup_cpu_quota(v1) is None
    assert threads._cgroup_cpu_quota(tmp_path / "absent") is None


def _pool_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info()}


def test_automatic_limit_reaches_every_pool(monkeypatch):
    import faiss  # noqa: F401 - its OpenBLAS and OpenMP must be limited too
    import torch

    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    with limit_threads(None, n_samples=3_000, n_features=1_280) as count:
        assert count == 1
        assert _pool_threads() == {1}  # before: None left every pool at its default (all cores)
        assert torch.get_num_threads() == 1
        assert faiss.omp_get_max_threads() == 1
    monkeypatch.setattr(threads, "available_cores", lambda: 16)
    with limit_threads(None, n_samples=1_000_000, n_features=512) as count:
        assert count == 8
        assert torch.get_num_threads() == 8 and faiss.omp_get_max_threads() == 8


def test_explicit_count_wins_over_nested_automatic_blocks(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    with limit_threads(1):
        with limit_threads(None, n_samples=1_000_000, n_features=512) as count:
            assert count == 1 and _pool_threads() == {1}
    with limit_threads(None) as outer:  # a block of unknown size (the session's): one thread ...
        with limit_threads(None, n_samples=1_000_000, n_features=512) as count:
            assert outer == 1 and count == 4  # ... but a nested block that knows its size chooses by it


def test_limits_are_restored_after_the_block():
    import torch

    before_pools, before_torch = _pool_threads(), torch.get_num_threads()
    with limit_threads(1):
        pass
    assert _pool_threads() == before_pools and torch.get_num_threads() == before_torch


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(InputValidationError, match="n_threads must be a whole number >= 1"):
        with limit_threads(bad):
            pass


def test_class_report_runs_on_the_chosen_count(monkeypatch):
    from coreclean.diagnostics.class_report import class_report

    seen = []
    original = threads._pools_limited

    def spy(count):
        seen.append(count)
        return original(count)

    monkeypatch.setattr(threads, "_pools_limited", spy)
    monkeypatch.setattr(threads, "available_cores", lambda: 16)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 8)).astype(np.float32)
    class_report(features, rng.integers(0, 3, 200))
    with limit_threads(2):
        class_report(features, rng.integers(0, 3, 200))
    assert seen == [1, 2, 2]  # small: one thread; inside an explicit --threads 2: two


def test_the_graph_search_gets_every_free_core_when_big_enough():
    from coreclean._internal.threads import graph_search_threads

    assert [graph_search_threads(200_000, 256, cores) for cores in (1, 2, 16)] == [1, 2, 16]
    assert graph_search_threads(3_000, 256, 16) == 1  # too small to pay
    assert graph_search_threads(20_000, 256, 16) == 5  # one thread per WORK_PER_THREAD entries


def test_graph_search_threads_follow_the_idle_cores_and_yield_to_an_explicit_count(monkeypatch):
    import faiss

    from coreclean._internal.threads import limit_graph_search_threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "available_cores", lambda: 1)  # the load average counts our own thread
    monkeypatch.setattr(threads, "idle_cores", lambda: 1.9)  # while we sleep, both cores are idle
    with limit_threads(n_samples=200_000, n_features=256) as automatic:
        with limit_graph_search_threads(200_000, 256) as count:
            assert count == 2 and faiss.omp_get_max_threads() == 2
        assert faiss.omp_get_max_threads() == automatic  # restored
    with limit_threads(1):  # --threads 1 holds for the search too
        with limit_graph_search_threads(200_000, 256) as count:
            assert count == 1 and faiss.omp_get_max_threads() == 1
    monkeypatch.setattr(threads, "idle_cores", lambda: 0.3)  # another job busy on both cores
    with limit_graph_search_threads(200_000, 256) as count:
        assert count == 1
    monkeypatch.setattr(threads, "idle_cores", lambda: None)  # no /proc/stat: the load average decides
    with limit_graph_search_threads(200_000, 256) as count:
        assert count == 1


_real_sleep = time.sleep


def _next_sample_on_this_thread(stat, samples):
    """A ``time.sleep`` that writes the next /proc/stat sample when the test's thread sleeps.

    ``threads.time`` is the ``time`` module itself, so the patch reaches every thread: a client a
    previous test left running (pymongo's, from FiftyOne) slept in it and used up the samples (CI,
    stop 28). Other threads sleep for real.
    """
    test_thread = threading.current_thread()

    def sleep(seconds: float) -> None:
        if threading.current_thread() is test_thread:
            stat.write_text(next(samples))
        else:
            _real_sleep(seconds)
    return sleep


def test_idle_cores_reads_the_kernels_idle_share(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    samples = iter(["cpu  100 0 100 800 0 0 0 0 0 0\n", "cpu  150 0 150 1000 0 0 0 0 0 0\n"])
    monkeypatch.setattr(threads.time, "sleep", _next_sample_on_this_thread(stat, samples))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads, "_own_cpu_ticks", lambda: 0)
    stat.write_text(next(samples))
    done = threading.Event()
    other = threading.Thread(target=lambda: [time.sleep(0.001) for _ in iter(done.is_set, True)], daemon=True)
    other.start()  # another thread sleeping meanwhile must not read the samples
    try:
        assert threads.idle_cores(stat=stat) == pytest.approx(4 * 200 / 300)  # idle 200 of 300 ticks on 4 CPUs
    finally:
        done.set()
        other.join(timeout=5)
    assert threads.idle_cores(stat=tmp_path / "missing") is None


def test_this_processs_own_spinning_workers_count_as_free_cores(tmp_path, monkeypatch):
    # After a parallel region, a BLAS/OpenMP pool spins before it sleeps: busy ticks that are ours.
    # An idle 2-core box read as one busy core and a million-row neighbour search got one thread.
    stat = tmp_path / "stat"
    samples = iter(["cpu  100 0 100 800 0 0 0 0 0 0\n", "cpu  200 0 100 900 0 0 0 0 0 0\n"])
    own = iter([1000, 1100])
    monkeypatch.setattr(threads.time, "sleep", _next_sample_on_this_thread(stat, samples))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "_own_cpu_ticks", lambda: next(own))
    stat.write_text(next(samples))
    # 200 ticks on 2 CPUs: 100 idle, 100 busy, and the busy ones were this process's own.
    assert threads.idle_cores(stat=stat) == pytest.approx(2.0)


def test_own_cpu_ticks_count_this_processs_work() -> None:
    before = threads._own_cpu_ticks()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert threads._own_cpu_ticks() - before >= 0.1 * os.sysconf("SC_CLK_TCK")


def test_a_limit_reaches_sklearns_openmp_runtime_in_a_fresh_process():
    import subprocess
    import sys

    code = ("import sys; from coreclean._internal.threads import limit_threads\n"
            "assert 'sklearn' not in sys.modules\n"
            "from threadpoolctl import threadpool_info\n"
            "with limit_threads(1):\n"
            "    pools = [p for p in threadpool_info() if p['internal_api'] == 'openmp']\n"
            "    assert pools and all(p['num_threads'] == 1 for p in pools), pools\n"
            "    assert any('scikit_learn' in p['filepath'] or 'sklearn' in p['filepath'] for p in pools), pools\n")
    subprocess.run([sys.executable, "-c", code], check=True)
