"""Tests for ``rank --engine ray`` (coreclean.engines.ray_blocks) on a local Ray bound to 127.0.0.1 only.

The Ray engine must rank as the local engine does (it runs the same block functions), record its
blocks and tasks, and fail with one line, quickly, at an address where no cluster answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # read when ray is imported: every node binds 127.0.0.1
ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "coreclean[ray]")')

from coreclean._internal.blocks import LocalBlocks  # noqa: E402
from coreclean.cli import main  # noqa: E402
from coreclean.engines.ray_blocks import RayBlocks  # noqa: E402
from coreclean.scoring.ranker import LabelIssueRanker  # noqa: E402
from tests.conftest import make_image_folder  # noqa: E402

REPO = Path(__file__).parents[1]


def _blobs(n: int = 3000, d: int = 32, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` Gaussian classes in ``d`` columns with a tenth of the labels redrawn at random."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    features = (rng.normal(size=(k, d))[labels] * 1.5 + rng.normal(size=(n, d))).astype(np.float32)
    redrawn = rng.random(n) < 0.1
    labels[redrawn] = rng.integers(0, k, int(redrawn.sum()))
    return features, labels


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_rank_cli_on_ray_matches_local_and_records_blocks(tmp_path: Path, capsys) -> None:
    features, labels = _blobs()
    np.save(tmp_path / "x.npy", features)
    np.save(tmp_path / "y.npy", labels)
    common = ["--quiet", "rank", "--features", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")]
    assert main([*common, "--out", str(tmp_path / "local.csv")]) == 0
    assert "engine local" in capsys.readouterr().out
    assert not ray.is_initialized()
    assert main([*common, "--out", str(tmp_path / "ray.csv"), "--engine", "ray", "--block-rows", "400"]) == 0
    printed = capsys.readouterr().out
    assert not ray.is_initialized()  # the local Ray it started is shut down
    assert "engine ray (local, " in printed and "8 blocks" in printed  # 3000 rows / 400
    local, remote = (pd.read_csv(tmp_path / name).sort_values("id") for name in ("local.csv", "ray.csv"))
    assert list(local["id"]) == list(remote["id"])
    assert spearmanr(local["score"], remote["score"])[0] >= 0.999
    assert (local["suggested_label"].to_numpy() == remote["suggested_label"].to_numpy()).mean() >= 0.999


@pytest.mark.slow
def test_ray_blocks_run_the_local_block_maths_with_coresets(tmp_path: Path) -> None:
    """With coresets (max_fit_samples below the training rows) the same blocks give the same scores."""
    features, labels = _blobs(n=2400, d=16, seed=1)
    np.save(tmp_path / "x.npy", features)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    settings = {"max_fit_samples": 600, "random_state": 0, "n_components": None}
    here = LabelIssueRanker(engine=LocalBlocks(block_rows=500), **settings).fit(mapped, labels)
    with RayBlocks(block_rows=500) as engine:
        there = LabelIssueRanker(engine=engine, **settings).fit(mapped, labels)
    assert np.allclose(here.scores_, there.scores_, atol=1e-6)
    assert engine.info["blocks"] == 5 and engine.info["cpus"] >= 1
    names = {p["fn"] for p in engine.info["passes"]}
    assert names == {"coreset_gram_block", "coreset_draw_block", "fold_probs_block", "search_block"}
    # the path travelled, not the rows: each block read its own rows of the file
    gram = next(p for p in engine.info["passes"] if p["fn"] == "fold_probs_block")
    assert gram["bytes_read_from_file"] == features.nbytes and gram["bytes_to_tasks"] < features.nbytes / 4
    # the union of per-block coresets is near the one-block (global) coreset's ranking
    whole = LabelIssueRanker(**settings).fit(mapped, labels)
    assert spearmanr(whole.scores_, there.scores_)[0] >= 0.95


@pytest.mark.slow
def test_ray_tasks_each_hold_one_shard_of_the_neighbour_index_and_rank_as_one_index_does(tmp_path: Path) -> None:
    """With ``max_index_bytes`` below the index's size, the shards are filled by tasks (one per shard)
    and stay in the object store (nothing comes back to the driver); each search pass ships one shard;
    the (exact) neighbours, so the scores, are those of one index."""
    features, labels = _blobs(n=2400, d=16, seed=2)
    np.save(tmp_path / "x.npy", features)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    settings = {"random_state": 0, "n_components": None}
    here = LabelIssueRanker(engine=LocalBlocks(block_rows=500), **settings).fit(mapped, labels)
    with RayBlocks(block_rows=500, max_index_bytes=80_000) as engine:
        there = LabelIssueRanker(engine=engine, **settings).fit(mapped, labels)
    assert np.allclose(here.scores_, there.scores_, atol=1e-6)
    searches = [p for p in engine.info["passes"] if p["fn"] == "candidates_block"]
    assert len(searches) == len(engine.info["index_shard_bytes"]) >= 3
    fills = [p for p in engine.info["passes"] if p["fn"] == "fill_shard_block"]
    assert len(fills) == 1 and fills[0]["blocks"] == len(searches) and fills[0]["bytes_from_tasks"] == 0
    assert fills[0]["result_bytes"] == engine.info["index_shard_bytes"]
    assert max(engine.info["index_shard_bytes"]) <= 80_000
    assert all(p["bytes_to_tasks"] <= 80_000 + 16 * 1024 for p in searches)  # one shard (and the norms) per pass
    assert {p["fn"] for p in engine.info["passes"]} >= {"rerank_block"}


@pytest.mark.parametrize("command", ["rank", pytest.param("embed", marks=pytest.mark.slow)])
def test_unreachable_address_fails_with_one_line_quickly(tmp_path: Path, command: str) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 2), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array([0, 1, 0, 1]))
    inputs = (["--features", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--out", str(tmp_path / "r.csv")]
              if command == "rank" else
              [str(make_image_folder(tmp_path / "images", per_class=1)), "--cache", str(tmp_path / "c"), "--backbone",
               "resnet18", "--weights", "none", "--image-size", "32", "--device", "cpu"])
    address = f"127.0.0.1:{_free_port()}"
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "coreclean", "--quiet", command, *inputs, "--engine", "ray",
                           "--address", address], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode != 0 and time.monotonic() - began < 45  # 10 s connection check + imports on a busy box
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and address in lines[0] and "ray start --head" in lines[0], done.stderr
