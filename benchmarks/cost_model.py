"""How long would ``rank`` (and ``embed``) take on N workers at 10M or 100M rows? A cost model from measured runs.

``python -m benchmarks.cost_model measure`` (sizes 50k, 200k and 1M) ranks the ``benchmarks.scale`` synthetic set
(512-d, 10 classes, 10% noise) at each size, locally and on a local Ray, and on Ray again with the
neighbour index cut into 2 and 4 shards (``--shards``, as ``RayBlocks`` cuts any index over 2 GiB),
each run in a fresh child process, and records per pass: per-block task times, wall time, bytes sent to and back from the
tasks, bytes the tasks read from the features file; and the driver's own time (the fits, the index
build, the scoring) and its CSV write rate. ``python -m benchmarks.cost_model fit`` (fit sizes 50k and 200k)
fits the model on those sizes, back-tests it on the largest measured size, predicts 10M and 100M on
N workers, and writes ``benchmarks/results/cost_model.json`` and ``cost_model.md``.

The model (per size n, N workers, K folds, m = ``max_fit_samples``):

* each pass over the rows costs ``c_p`` seconds per row of task time (the median over the measured
  Ray runs) plus ``o`` per task (scheduling), run ``N`` at a time in blocks of ``n / (4N)`` rows;
* the driver's fits cost ``φ`` per training row per fold, on ``min((K-1)/K · n, m)`` rows (the coreset
  caps them), plus a 50k-row pilot per fold above m, and ``K`` coreset passes of two kinds (their
  per-row costs timed on one block, since they appear only above m): the curvature pass over the
  pilot's 50k rows, the sensitivity draw over all training rows;
* the driver's neighbour index (IVF-PQ: k-means on 32 rows per list, then every row assigned to one
  of 4√n lists and encoded; serial) costs ``γ₁ · n + γ₂ · n^1.5``, and the search pass's per-row cost
  is ``c₀ + c₁ · √n`` (each query scans 64 lists of √n/4 codes), both fitted by non-negative least
  squares over the fit sizes; the rest of the driver
  (pooling, the noise prior, the table) ``ρ · n``; the CSV ``bytes / write rate``;
* an index cut into S shards of its inverted lists (Ray's default above 2 GiB: 3 at 10M rows, 27 at
  100M) replaces the search pass and most of the driver's index: the driver only trains
  (``τ₀ + τ₁ · n``: k-means on 128√n rows and 4√n centroids, linear in n); a probe pass (every row's
  64 nearest of the 4√n lists, once: ``p₀ + p₁ · √n`` per row); a fill pass (one task per shard,
  ``f₀ + f₁ · √n`` per row: projection, encoding, assignment to a list); S candidate passes over every
  row at ``a₀ + (a₁ + a₂ · √n) / S`` per row each (a fixed part; the set-up of each of the ~64/S of a
  query's lists that the shard holds, the residual's distance table; the scan of their codes, √n/4 a
  list); one re-rank pass. Fitted by non-negative least squares on the sharded runs at the fit sizes
  (2 and 4 shards each). An earlier form, ``a₀ + a₁ · √n + a₂ · √n / S`` with the training as
  ``τ₁ · n + τ₂ · n^1.5``, had no per-list part: the fit put the 50k runs' list set-up into the scan,
  whose √n then over-priced 1M by half (+47% and +51% in the back-test);
* a Ray run adds its start-up (measured) and the bytes it moves over ``--bandwidth`` (default 1.25 GB/s,
  a 10 GbE link or a shared file server: assumed, not measured; on one node the object store is
  shared memory): each pass's rows read from the features file, arguments and results, and the
  serialised neighbour index once per worker (each search task holds the whole index; with shards,
  one shard at a time). Workers are priced as separate nodes; the back-test's runs had all their
  workers on one machine, where the object store is shared memory and the copies are inside the
  measured per-row costs, so it prices no transfer (before, it added 21-34 s of network time that
  the measured runs never paid).

What a 2-core box can say: per-row task costs, per-task overhead, driver costs and their growth
with n are measured; how passes speed up with N is *assumed* (perfectly parallel blocks, no
contention for the file system or the network); the driver's serial part is what bounds the
speed-up (Amdahl), and that part is measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO

RESULTS = REPO / "benchmarks" / "results"
WORK = REPO / "benchmarks" / "work" / "scale"
PASSES = ("fold_probs_block", "search_block", "coreset_gram_block", "coreset_draw_block")
SHARD_PASSES = ("probe_block", "fill_shard_block", "candidates_block", "rerank_block")
_FOLDS = 5
_MAX_FIT = 200_000
_PILOT = 50_000


def _one(args: argparse.Namespace) -> None:
    """Child: rank one size with one engine; print the measurements as JSON."""
    import pandas as pd  # noqa: F401  (imported before the clock starts)

    from benchmarks.scale import generate
    from coreclean._internal.blocks import LocalBlocks
    from coreclean.scoring import signal_set
    from coreclean.scoring.ranker import LabelIssueRanker

    paths = generate(WORK, args.n, 512, 10, 0.1, 0)
    features = np.load(paths["features"], mmap_mode="r")
    labels = np.load(paths["labels"])
    began = time.perf_counter()
    if args.engine == "ray":
        from coreclean.engines.ray_blocks import RayBlocks

        engine = RayBlocks(**({"max_index_bytes": _bytes_for_shards(args.n, args.shards)} if args.shards else {}))
        engine.__enter__()
    else:
        engine = LocalBlocks()
    startup = time.perf_counter() - began
    # The model prices the path where neighbours pay (real embeddings); on this synthetic set the
    # neighbour pilot would skip the graph above its size, so it is held off here.
    signal_set.NEIGHBOR_PILOT_ABOVE = sys.maxsize
    try:
        start = time.perf_counter()
        ranker = LabelIssueRanker(engine=engine, random_state=0).fit(features, labels)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            csv = Path(folder) / "ranking.csv"
            ranker.to_frame().to_csv(csv, index=False)
            csv_bytes = csv.stat().st_size
        write_s = time.perf_counter() - start
        block_costs = _coreset_block_costs(features, labels) if args.block_costs else {}
    finally:
        if args.engine == "ray":
            engine.__exit__(None, None, None)
    print(json.dumps({"n": args.n, "engine": args.engine, "shards": len(engine.info.get("index_shard_bytes", [])) or 1,
                      "startup_s": startup, "fit_s": fit_s,
                      "timings": ranker.signals_.timings, "info": engine.info, "csv_bytes": csv_bytes,
                      "write_s": write_s, "coreset_block_s_per_row": block_costs, "load_average": os.getloadavg()}))


def _bytes_for_shards(n: int, shards: int) -> int:
    """A ``max_index_bytes`` that cuts the index over ``n`` rows into ``shards`` shards (2% over an even share:
    shards of whole inverted lists are only about even)."""
    from coreclean._internal.knn_shards import shard_bytes

    return shard_bytes(n, math.ceil(1.02 * n / shards))


def _coreset_block_costs(features: np.ndarray, labels: np.ndarray, rows: int = 32768) -> dict:
    """Seconds per row of the two coreset passes' block functions, timed on one block here."""
    from coreclean.scoring.linear.coreset import coreset_draw_block, coreset_gram_block, fit_logistic, theta_from_model
    from coreclean.scoring.linear.sensitivity import leverage_sketch, loss_region
    from coreclean.scoring.linear.standardize import Standardizer

    block = np.arange(min(rows, features.shape[0]))
    weight = np.ones(block.size)
    standardizer = Standardizer().fit(features[:block.size])
    pilot = block[:5000]
    model = fit_logistic(standardizer.transform(features[pilot]), labels[pilot], weight[pilot], C=0.01, tol=1e-4)
    theta, _ = theta_from_model(model, 10, 0.01)
    start = time.perf_counter()
    gram, loss = coreset_gram_block(features, 0, block.size, block, labels[block], weight, standardizer, theta)
    gram_s = time.perf_counter() - start
    region = loss_region(gram, loss, theta, C=0.01, radius=0.01)
    start = time.perf_counter()
    coreset_draw_block(features, 0, block.size, block, labels[block], weight, np.random.default_rng(0).random(block.size),
                       block.size / 4, standardizer, theta, region, leverage_sketch(region, random_state=0))
    draw_s = time.perf_counter() - start
    return {"coreset_gram_block": gram_s / block.size, "coreset_draw_block": draw_s / block.size}


def measure(args: argparse.Namespace) -> None:
    """Run every (size, engine) in a child, one at a time, and the sharded Ray runs (``--shards`` at
    ``--shard-sizes``); replace those entries of ``cost_model_runs.json``."""
    out = RESULTS / "cost_model_runs.json"
    runs = json.loads(out.read_text()) if out.exists() else []
    plan = [(n, engine, 0) for n in args.sizes for engine in args.engines]
    plan += [(n, "ray", shards) for n in args.shard_sizes for shards in args.shards]
    for n, engine, shards in plan:
        command = [sys.executable, "-m", "benchmarks.cost_model", "_one", "--n", str(n), "--engine", engine,
                   "--shards", str(shards)]
        if engine == "local" and n == min(args.sizes):
            command.append("--block-costs")
        done = subprocess.run(command, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        run = json.loads(done.stdout.strip().splitlines()[-1])
        runs = [r for r in runs if _key(r) != _key(run)] + [run]
        print(f"n={n} {engine} ({run['shards']} shards): fit {run['fit_s']:.1f} s, start-up {run['startup_s']:.1f} s",
              flush=True)
        out.write_text(json.dumps(runs, indent=1))


def _key(run: dict) -> tuple:
    return run["n"], run["engine"], run.get("shards", 1)


def _pass_totals(run: dict) -> dict:
    """Per pass name: summed wall seconds, task seconds, rows, tasks and bytes moved."""
    totals: dict = {}
    for p in run["info"]["passes"]:
        t = totals.setdefault(p["fn"], {"wall_s": 0.0, "task_s": 0.0, "rows": 0, "tasks": 0, "bytes": 0, "shared": 0})
        t["wall_s"] += p["wall_s"]
        t["task_s"] += sum(p["task_s"])
        t["rows"] += p["rows"]
        t["tasks"] += p["blocks"]
        # what each block's rows cost on the wire (their arguments, results and file reads); the search
        # passes' shared values are the index (or a shard), which every worker needs whole: counted apart
        to_tasks = p.get("bytes_to_tasks", 0)
        index_pass = p["fn"] in ("search_block", "candidates_block")
        own = p.get("per_block_bytes", 0) if index_pass else to_tasks
        t["shared"] += to_tasks - own
        t["bytes"] += own + p.get("bytes_from_tasks", 0) + p.get("bytes_read_from_file", 0)
    return totals


def _driver_parts(run: dict) -> dict:
    """The driver's serial seconds: fits (out-of-fold minus its passes), index (kNN minus its passes: with
    shards, the training only), rest."""
    totals = _pass_totals(run)
    walls = {name: totals.get(name, {}).get("wall_s", 0.0) for name in PASSES + SHARD_PASSES}
    oof = run["timings"].get("out_of_fold", 0.0) - walls["fold_probs_block"] - walls["coreset_gram_block"] \
        - walls["coreset_draw_block"]
    index = run["timings"].get("neighbors", 0.0) - sum(walls[name] for name in ("search_block",) + SHARD_PASSES)
    rest = run["fit_s"] - run["timings"].get("out_of_fold", 0.0) - run["timings"].get("neighbors", 0.0)
    return {"fits": oof, "index": index, "rest": rest}


def _fit_rows(n: float) -> float:
    """Training rows the driver's fits see over all folds: the capped training part, plus pilots above m."""
    train = (_FOLDS - 1) / _FOLDS * n
    return _FOLDS * (min(train, _MAX_FIT) + (min(_PILOT, _MAX_FIT) if train > _MAX_FIT else 0))


def _nonnegative_fit(x: list[list[float]], y: list[float]) -> list[float]:
    """Non-negative least-squares coefficients of y = x · a (rows of ``x`` the regressors of each point)."""
    from scipy.optimize import nnls

    return [float(a) for a in nnls(np.asarray(x, dtype=float), np.asarray(y, dtype=float))[0]]


def _through_origin(x: list[float], y: list[float]) -> float:
    """Least-squares slope of y = a·x."""
    return float(np.dot(x, y) / np.dot(x, x))


def fit_model(runs: list[dict], fit_sizes: list[int], bandwidth: float) -> dict:
    """Parameters of the model (module docstring) from the runs at ``fit_sizes``."""
    ray = [r for r in runs if r["engine"] == "ray" and r["n"] in fit_sizes and r.get("shards", 1) == 1]
    local = [r for r in runs if r["engine"] == "local" and r["n"] in fit_sizes]
    sharded = [r for r in runs if r["engine"] == "ray" and r["n"] in fit_sizes and r.get("shards", 1) > 1]
    params: dict = {"bandwidth_bytes_per_s": bandwidth, "fit_sizes": sorted(fit_sizes)}
    for name, group in (("ray", ray), ("local", local)):
        if not group:
            continue
        parts = [_driver_parts(r) for r in group]
        ns = [r["n"] for r in group]
        params[name] = {
            "fit_s_per_row": _through_origin([_fit_rows(n) for n in ns], [p["fits"] for p in parts]),
            "index_s_per_n_and_n15": _nonnegative_fit([[n, n ** 1.5] for n in ns], [p["index"] for p in parts]),
            "rest_s_per_row": _through_origin(ns, [p["rest"] for p in parts]),
            "write_bytes_per_s": statistics.median(r["csv_bytes"] / r["write_s"] for r in group),
            "csv_bytes_per_row": statistics.median(r["csv_bytes"] / r["n"] for r in group),
            "startup_s": statistics.median(r["startup_s"] for r in group),
        }
        per_row, per_task, bytes_per_row = {}, [], {}
        totals = [(r["n"], _pass_totals(r)) for r in group]
        for p in PASSES:
            sizes = [n for n, passes in totals if p in passes]
            rows = [passes[p] for _, passes in totals if p in passes]
            if rows:
                per_row[p] = statistics.median(t["task_s"] / t["rows"] for t in rows)
                bytes_per_row[p] = statistics.median(t["bytes"] / t["rows"] for t in rows)
                if p == "search_block":  # its cost per row grows with √n: fitted, not a median
                    params[name]["search_s_per_row_1_and_root_n"] = _nonnegative_fit(
                        [[1.0, math.sqrt(n)] for n in sizes], [t["task_s"] / t["rows"] for t in rows])
                    params[name]["index_bytes_per_row"] = statistics.median(t["shared"] / t["rows"] for t in rows)
                cpus = max(1, group[0]["info"].get("cpus", 1))
                per_task += [max(0.0, (t["wall_s"] - t["task_s"] / min(cpus, t["tasks"])) / math.ceil(t["tasks"] / cpus))
                             for t in rows]
        params[name]["pass_s_per_row"] = per_row
        params[name]["pass_bytes_per_row"] = bytes_per_row
        params[name]["task_overhead_s"] = statistics.median(per_task) if per_task and name == "ray" else 0.0
    block_costs = next((r["coreset_block_s_per_row"] for r in runs if r.get("coreset_block_s_per_row")), {})
    for name in ("ray", "local"):
        for p, cost in block_costs.items():
            if name in params:
                params[name]["pass_s_per_row"].setdefault(p, cost)
    if sharded:
        params["ray_sharded"] = _fit_shards(sharded)
    return params


def _fit_shards(runs: list[dict]) -> dict:
    """The sharded index's parameters, from Ray runs whose index was cut into shards (module docstring)."""
    points = [(r["n"], r["shards"], _pass_totals(r), _driver_parts(r)) for r in runs]
    probe = [(n, t["probe_block"]) for n, _, t, _ in points]
    fill = [(n, t["fill_shard_block"]) for n, _, t, _ in points]
    candidates = [(n, shards, t["candidates_block"]) for n, shards, t, _ in points]
    return {
        "probe_s_per_row_1_and_root_n": _nonnegative_fit([[1.0, math.sqrt(n)] for n, _ in probe],
                                                         [t["task_s"] / t["rows"] for _, t in probe]),
        "fill_s_per_row_1_and_root_n": _nonnegative_fit([[1.0, math.sqrt(n)] for n, _ in fill],
                                                        [t["task_s"] / t["rows"] for _, t in fill]),
        # per row and shard pass: a fixed part; the query's ~64/S lists that the shard holds, a set-up each
        # (the residual's distance table); their codes, √n/4 each (module docstring)
        "candidates_s_per_row_1_per_shard_root_n_per_shard": _nonnegative_fit(
            [[1.0, 1.0 / shards, math.sqrt(n) / shards] for n, shards, _ in candidates],
            [t["task_s"] / t["rows"] for _, _, t in candidates]),
        "rerank_s_per_row": statistics.median(t["rerank_block"]["task_s"] / t["rerank_block"]["rows"]
                                              for _, _, t, _ in points),
        # k-means on 32 rows per list of 4√n lists: 128√n rows x 4√n centroids, linear in n, plus a fixed part
        "training_s_1_and_per_n": _nonnegative_fit([[1.0, n] for n, *_ in points], [d["index"] for *_, d in points]),
        "index_bytes_per_row": statistics.median(t["candidates_block"]["shared"] / n for n, _, t, _ in points),
        "pass_bytes_per_row": {name: statistics.median(t[name]["bytes"] / t[name]["rows"] for *_, t, _ in points)
                               for name in SHARD_PASSES},
    }


def predict(params: dict, engine: str, n: int, workers: int, shards: int | None = None, *,
            one_node: bool = False) -> dict:
    """Predicted seconds (and their parts) of ``rank`` on ``n`` rows with ``workers`` workers.

    ``workers`` are taken to be on separate nodes, so the bytes moved cross the network at the
    assumed bandwidth; ``one_node=True`` prices them on one machine, where Ray's object store is
    shared memory and the measured per-row costs already hold the copies (the back-test's case).

    On Ray the neighbour index is cut into ``shards`` (default: as ``RayBlocks``' 2 GiB limit cuts it,
    :func:`coreclean._internal.knn_shards.shard_count`); with more than one, the search is priced as the
    sharded runs measured it: a probe pass, a fill pass (one task per shard), one candidates pass per shard,
    a re-rank pass.
    """
    from coreclean._internal.knn_shards import shard_count
    from coreclean.engines.ray_blocks import MAX_INDEX_BYTES

    p = params[engine]
    if shards is None:
        shards = shard_count(n, MAX_INDEX_BYTES) if engine == "ray" else 1
    sharded = params.get("ray_sharded") if engine == "ray" and shards > 1 else None
    if engine == "ray" and shards > 1 and sharded is None:
        raise ValueError(f"{n:,} rows cut into {shards} shards, and no sharded runs to price them: measure with --shards")
    coreset = (_FOLDS - 1) / _FOLDS * n > _MAX_FIT
    passes = {"fold_probs_block": 1, "search_block": 0 if sharded else 1,
              "coreset_gram_block": _FOLDS if coreset else 0, "coreset_draw_block": _FOLDS if coreset else 0}
    blocks = 1 if engine == "local" else 4 * workers
    rounds = 1 if engine == "local" else math.ceil(blocks / workers)
    per_row = dict(p["pass_s_per_row"])
    if "search_s_per_row_1_and_root_n" in p:
        c0, c1 = p["search_s_per_row_1_and_root_n"]
        per_row["search_block"] = c0 + c1 * math.sqrt(n)
    rows = {name: min(_PILOT, n) if name == "coreset_gram_block" else n for name in passes}
    pass_s = sum(count * (per_row[name] * rows[name] / (1 if engine == "local" else workers)
                          + rounds * p["task_overhead_s"]) for name, count in passes.items())
    driver_index = p["index_s_per_n_and_n15"][0] * n + p["index_s_per_n_and_n15"][1] * n ** 1.5
    moved, index_bytes = 0.0, 0.0
    if engine == "ray":
        # a coreset pass reads the rows from the file as the prediction pass does: its bytes per row
        moved = sum(count * p["pass_bytes_per_row"].get(name, p["pass_bytes_per_row"]["fold_probs_block"]) * n
                    for name, count in passes.items())
        index_bytes = p.get("index_bytes_per_row", 0.0) * n
    if sharded:
        q0, q1 = sharded["probe_s_per_row_1_and_root_n"]
        f0, f1 = sharded["fill_s_per_row_1_and_root_n"]
        a0, a1, a2 = sharded["candidates_s_per_row_1_per_shard_root_n_per_shard"]
        root = math.sqrt(n)
        fill_s = math.ceil(shards / workers) * (n / shards * (f0 + f1 * root) + p["task_overhead_s"])
        candidates_s = shards * ((a0 + (a1 + a2 * root) / shards) * n / workers + rounds * p["task_overhead_s"])
        probe_s = (q0 + q1 * root) * n / workers + rounds * p["task_overhead_s"]
        pass_s += probe_s + fill_s + candidates_s + sharded["rerank_s_per_row"] * n / workers \
            + rounds * p["task_overhead_s"]
        t0, t1 = sharded["training_s_1_and_per_n"]
        driver_index = t0 + t1 * n
        bytes_per_row = sharded["pass_bytes_per_row"]
        moved += n * (bytes_per_row["probe_block"] + bytes_per_row["fill_shard_block"]
                      + shards * bytes_per_row["candidates_block"] + bytes_per_row["rerank_block"])
        index_bytes = sharded["index_bytes_per_row"] * n / shards  # what one task holds: one shard
        moved += sharded["index_bytes_per_row"] * n * workers  # every worker reads every shard once
    elif engine == "ray":
        moved += index_bytes * workers  # every worker receives the whole index
    parts = {
        "startup_s": p["startup_s"] if engine == "ray" else 0.0,
        "passes_s": pass_s,
        "driver_fits_s": p["fit_s_per_row"] * _fit_rows(n),
        "driver_index_s": driver_index,
        "driver_rest_s": p["rest_s_per_row"] * n,
        "csv_write_s": p["csv_bytes_per_row"] * n / p["write_bytes_per_s"],
        "transfer_s": moved / params["bandwidth_bytes_per_s"] if engine == "ray" and workers > 1 and not one_node
        else 0.0,
    }
    return {"total_s": sum(parts.values()), "bytes_moved": moved, "shards": shards,
            "index_bytes_per_worker": index_bytes, **parts}


def embed_model() -> dict:
    """Embed costs from ``scale_out.json``: Ray's start-up over local (CPU, 1k images) and the H100's images/s."""
    data = json.loads((RESULTS / "scale_out.json").read_text())
    cpu = data["local-vs-ray"]
    local_s, ray_s = cpu["median_s"]["local"], cpu["median_s"]["ray"]
    per_image = local_s / cpu["n_images"]
    gpu_rate = data["gpu"]["images_per_s_median"]["cpu-decode/fp32"]
    chunk = np.random.default_rng(0).random((4096, 1280), dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        for i in range(8):
            with open(Path(folder) / f"c{i}.npy", "wb") as handle:
                np.save(handle, chunk)
                handle.flush()
                os.fsync(handle.fileno())
        write_rate = 8 * chunk.nbytes / (time.perf_counter() - start)
    feature_bytes = 1280 * 4
    rows = []
    for n in (10_000_000, 100_000_000):
        for gpus in (1, 8, 64):
            compute = n / (gpus * gpu_rate)
            rows.append({"n": n, "gpus": gpus, "compute_s": compute, "driver_write_s": n * feature_bytes / write_rate,
                         "total_s": max(compute, n * feature_bytes / write_rate)})
    return {"cpu_1k_images": {"local_s": local_s, "ray_s": ray_s, "ray_extra_s": ray_s - local_s,
                              "cpu_s_per_image_resnet18_64px": per_image},
            "h100_images_per_s_fp32_cpu_decode": gpu_rate, "driver_write_bytes_per_s": write_rate,
            "feature_bytes_per_image_mobilenet_v2": feature_bytes, "predictions": rows,
            "note": "one size measured on CPU, so no back-test; GPUs scale linearly by assumption (one actor per GPU, "
                    "decode keeps up); the driver commits every vector, so its write rate caps the cluster"}


def fit(args: argparse.Namespace) -> None:
    """Fit on ``--fit-sizes``, back-test on the largest measured size, predict, write JSON and markdown."""
    runs = json.loads((RESULTS / "cost_model_runs.json").read_text())
    params = fit_model(runs, args.fit_sizes, args.bandwidth)
    measured = sorted({r["n"] for r in runs})
    held = max(measured)
    backtest = []
    for r in runs:
        if r["n"] == held:
            workers = r["info"].get("cpus", 1) if r["engine"] == "ray" else 1
            predicted = predict(params, r["engine"], held, workers, shards=r.get("shards", 1), one_node=True)
            guess = predicted["total_s"]
            actual = r["startup_s"] + r["fit_s"] + r["write_s"]
            driver = _driver_parts(r)
            measured = {"passes_s": sum(t["wall_s"] for t in _pass_totals(r).values()),
                        "driver_fits_s": driver["fits"], "driver_index_s": driver["index"],
                        "driver_rest_s": driver["rest"], "csv_write_s": r["write_s"]}
            backtest.append({"n": held, "engine": r["engine"], "shards": r.get("shards", 1), "workers": workers,
                             "measured_s": actual,
                             "predicted_s": guess, "error": guess / actual - 1.0,
                             "parts": {name: {"measured": value, "predicted": predicted[name]}
                                       for name, value in measured.items()},
                             "in_fit": held in args.fit_sizes, "load_average_1min": r["load_average"][0]})
    predictions = [{"n": n, "engine": engine, "workers": w, **predict(params, engine, n, w)}
                   for n in (10_000_000, 100_000_000) for engine, ws in (("local", (1,)), ("ray", (2, 8, 32, 128)))
                   for w in ws]
    result = {"command": " ".join(sys.argv), "params": params, "backtest": backtest, "predictions": predictions,
              "embed": embed_model(), "measured": [{"n": r["n"], "engine": r["engine"], "shards": r.get("shards", 1), "fit_s": r["fit_s"],
                                                    "startup_s": r["startup_s"], "blocks": r["info"]["blocks"],
                                                    "load_average_1min": r["load_average"][0],
                                                    "tasks": r["info"]["tasks"], **_driver_parts(r)} for r in runs]}
    (RESULTS / "cost_model.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "cost_model.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    """The tables of ``cost_model.md``."""
    lines = ["| n | engine | shards | measured (s) | load | blocks | tasks |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {m['n']:,} | {m['engine']} | {m.get('shards', 1)} | {m['fit_s']:.0f} | {m['load_average_1min']:.1f} | "
              f"{m['blocks']} | {m['tasks']} |"
              for m in sorted(result["measured"], key=lambda m: (m["n"], m["engine"], m.get("shards", 1)))]
    lines += ["", "| back-test n | engine | shards | workers | measured (s) | predicted (s) | error | load |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {b['n']:,} | {b['engine']} | {b.get('shards', 1)} | {b['workers']} | {b['measured_s']:.0f} | "
              f"{b['predicted_s']:.0f} | "
              f"{b['error']:+.0%}{' (in fit)' if b['in_fit'] else ''} | {b['load_average_1min']:.1f} |"
              for b in result["backtest"]]
    lines += ["", "| n | engine | workers | shards | total | passes | driver fits | driver index | driver rest | CSV | "
              "start-up | transfer | moved | index per task |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in result["predictions"]:
        lines.append(f"| {p['n']:,} | {p['engine']} | {p['workers']} | {p['shards']} | {_hours(p['total_s'])} | "
                     f"{_hours(p['passes_s'])} | "
                     f"{_hours(p['driver_fits_s'])} | {_hours(p['driver_index_s'])} | {_hours(p['driver_rest_s'])} | "
                     f"{_hours(p['csv_write_s'])} | {p['startup_s']:.0f} s | {_hours(p['transfer_s'])} | "
                     f"{p['bytes_moved'] / 2**30:.0f} GiB | {p['index_bytes_per_worker'] / 2**30:.0f} GiB |")
    embed = result["embed"]
    lines += ["", f"embed: Ray adds {embed['cpu_1k_images']['ray_extra_s']:.0f} s at 1k images on CPU; "
              f"an H100 embeds {embed['h100_images_per_s_fp32_cpu_decode']:.0f} images/s; the driver writes "
              f"{embed['driver_write_bytes_per_s'] / 2**20:.0f} MiB/s here.", "",
              "| n | GPUs | compute | driver write |", "|---|---|---|---|"]
    lines += [f"| {r['n']:,} | {r['gpus']} | {_hours(r['compute_s'])} | {_hours(r['driver_write_s'])} |"
              for r in embed["predictions"]]
    return "\n".join(lines) + "\n"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    one = sub.add_parser("_one")
    one.add_argument("--n", type=int, required=True)
    one.add_argument("--engine", choices=("local", "ray"), required=True)
    one.add_argument("--block-costs", action="store_true")
    one.add_argument("--shards", type=int, default=0, help="cut the index into this many shards (Ray; 0: the default)")
    m = sub.add_parser("measure", help="rank each size locally and on a local Ray (one child at a time)")
    m.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    m.add_argument("--engines", nargs="*", default=["local", "ray"])
    m.add_argument("--shards", type=int, nargs="*", default=[2, 4], help="Ray runs with the index cut into this many shards")
    m.add_argument("--shard-sizes", type=int, nargs="*", default=[50_000, 200_000, 1_000_000],
                   help="sizes of the sharded runs")
    f = sub.add_parser("fit", help="fit the model, back-test on the largest size, predict 10M and 100M")
    f.add_argument("--fit-sizes", type=int, nargs="+", default=[50_000, 200_000])
    f.add_argument("--bandwidth", type=float, default=1.25e9, help="bytes/s between nodes (assumed; default 10 GbE)")
    args = parser.parse_args(argv)
    {"_one": _one, "measure": measure, "fit": fit}[args.mode](args)


if __name__ == "__main__":
    main()
