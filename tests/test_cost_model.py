"""The rank cost model (benchmarks.cost_model) recovers how its parts grow and extrapolates with them."""

from __future__ import annotations

import math

import pytest

from benchmarks import cost_model


def _run(n: int, engine: str) -> dict:
    """A measured run as ``cost_model measure`` records it, made from known costs."""
    search_per_row = 2e-5 + 1e-7 * math.sqrt(n)  # the IVF scan grows with √n per query
    index = 1e-6 * n + 2e-9 * n ** 1.5  # k-means and encoding, plus assigning every row to 4√n lists
    fits = 3e-6 * cost_model._fit_rows(n)
    passes = [{"fn": "search_block", "wall_s": search_per_row * n, "task_s": [search_per_row * n], "rows": n,
               "blocks": 1, "bytes_to_tasks": 552 * n},
              {"fn": "fold_probs_block", "wall_s": 1e-6 * n, "task_s": [1e-6 * n], "rows": n, "blocks": 1}]
    if (cost_model._FOLDS - 1) / cost_model._FOLDS * n > cost_model._MAX_FIT:  # fold fits on coresets
        # the curvature pass reads each fold's 50k pilot rows, the draw every training row
        for name, rows in (("coreset_gram_block", cost_model._PILOT), ("coreset_draw_block", n)):
            seconds = cost_model._FOLDS * 1e-6 * rows
            passes.append({"fn": name, "wall_s": seconds, "task_s": [seconds], "rows": cost_model._FOLDS * rows,
                           "blocks": cost_model._FOLDS})
    neighbors = index + search_per_row * n
    out_of_fold = fits + sum(p["wall_s"] for p in passes if p["fn"] != "search_block")
    rest = 5e-7 * n
    return {"n": n, "engine": engine, "startup_s": 0.0, "fit_s": neighbors + out_of_fold + rest,
            "timings": {"neighbors": neighbors, "out_of_fold": out_of_fold},
            "info": {"passes": passes, "blocks": 1, "tasks": 2, "cpus": 1}, "csv_bytes": 40 * n, "write_s": 1e-7 * n,
            "coreset_block_s_per_row": {"coreset_gram_block": 1e-6, "coreset_draw_block": 1e-6},
            "load_average": [0.0, 0.0, 0.0]}


def test_the_model_fitted_on_two_sizes_predicts_a_third_from_the_same_costs() -> None:
    runs = [_run(n, "local") for n in (50_000, 200_000)]
    params = cost_model.fit_model(runs, [50_000, 200_000], bandwidth=1e9)
    held = _run(1_000_000, "local")
    predicted = cost_model.predict(params, "local", 1_000_000, 1)
    # A search cost fixed per row (the median over the fit sizes) and an n log n index miss it by > 10%.
    assert predicted["total_s"] == pytest.approx(held["fit_s"] + held["write_s"], rel=0.02)
    assert params["local"]["search_s_per_row_1_and_root_n"] == pytest.approx([2e-5, 1e-7], rel=1e-3)


def _sharded_run(n: int, shards: int) -> dict:
    """A Ray run whose index was cut into ``shards``, made from known costs (module docstring's model)."""
    run = _run(n, "ray")
    root = math.sqrt(n)
    probe = (2e-6 + 3e-8 * root) * n  # a row's 64 nearest of 4√n lists, found once
    fill = (3e-6 + 4e-9 * root) * n  # projecting and encoding a row, assigning it to one of 4√n lists
    per_pass_row = 1e-5 + (4e-6 + 6e-8 * root) / shards  # fixed; the set-up and codes of the shard's ~64/S lists
    rerank = 2e-6 * n
    training = 0.5 + 4e-7 * n  # k-means on 128√n rows x 4√n centroids, and a fixed part
    passes = [p for p in run["info"]["passes"] if p["fn"] != "search_block"]
    passes.append({"fn": "probe_block", "wall_s": probe, "task_s": [probe], "rows": n, "blocks": 1})
    passes.append({"fn": "fill_shard_block", "wall_s": fill, "task_s": [fill], "rows": n, "blocks": shards})
    passes += [{"fn": "candidates_block", "wall_s": per_pass_row * n, "task_s": [per_pass_row * n], "rows": n,
                "blocks": 1, "bytes_to_tasks": 600 * n // shards + 256 * n, "per_block_bytes": 256 * n}
               for _ in range(shards)]
    passes.append({"fn": "rerank_block", "wall_s": rerank, "task_s": [rerank], "rows": n, "blocks": 1})
    neighbors = training + probe + fill + shards * per_pass_row * n + rerank
    run["fit_s"] += neighbors - run["timings"]["neighbors"]
    run["timings"]["neighbors"] = neighbors
    run["info"]["passes"] = passes
    run["shards"] = shards
    return run


def test_sharded_runs_price_the_shard_passes_and_predict_a_third_size() -> None:
    runs = [_run(n, "ray") for n in (50_000, 200_000)]
    runs += [_sharded_run(n, shards) for n in (50_000, 200_000) for shards in (2, 4)]
    params = cost_model.fit_model(runs, [50_000, 200_000], bandwidth=1e9)
    held = _sharded_run(1_000_000, 4)
    predicted = cost_model.predict(params, "ray", 1_000_000, 1, shards=4)
    assert predicted["total_s"] == pytest.approx(held["fit_s"] + held["write_s"], rel=0.02)
    assert predicted["index_bytes_per_worker"] == pytest.approx(600 * 1_000_000 / 4, rel=0.01)  # one shard a task
    # two workers on one machine share memory: nothing crosses a network (the back-test's case)
    apart = cost_model.predict(params, "ray", 1_000_000, 2, shards=4)
    together = cost_model.predict(params, "ray", 1_000_000, 2, shards=4, one_node=True)
    assert apart["transfer_s"] > 0 and together["transfer_s"] == 0
    assert together["total_s"] == pytest.approx(apart["total_s"] - apart["transfer_s"])
    # one index over the same rows is priced from the one-index runs, not from the shards
    assert cost_model.predict(params, "ray", 1_000_000, 1, shards=1)["total_s"] == pytest.approx(
        _run(1_000_000, "ray")["fit_s"] + held["write_s"], rel=0.02)
    # by default Ray cuts 100M rows at 2 GiB a shard; without sharded runs that cannot be priced
    assert cost_model.predict(params, "ray", 100_000_000, 8)["shards"] > 20
    one_index_only = cost_model.fit_model(runs[:2], [50_000, 200_000], bandwidth=1e9)
    with pytest.raises(ValueError, match="--shards"):
        cost_model.predict(one_index_only, "ray", 100_000_000, 8)
