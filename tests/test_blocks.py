"""Tests for coreclean._internal.blocks: the passes over every row give the same answer in any blocks.

An engine only schedules; these check, without Ray, that splitting a pass into row blocks leaves
neighbours and out-of-fold probabilities unchanged and keeps the merged coreset an estimate of the
whole loss.
"""

from __future__ import annotations

import numpy as np

from coreclean._internal.blocks import LocalBlocks, row_blocks, rows_in_block
from coreclean._internal.knn import knn_graph
from coreclean.scoring.linear.coreset import sample_coreset_rows
from coreclean.scoring.linear.out_of_fold import OutOfFoldLogistic
from coreclean.scoring.linear.standardize import Standardizer


def _data(n: int = 600, d: int = 12, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    features = (rng.normal(size=(k, d))[labels] + rng.normal(size=(n, d))).astype(np.float32)
    return features, labels


def test_row_blocks_cover_every_row_once() -> None:
    assert row_blocks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert row_blocks(10, None) == [(0, 10)] and row_blocks(0, 3) == []
    rows = np.array([1, 3, 4, 8, 9])
    assert [rows[rows_in_block(rows, a, b)].tolist() for a, b in row_blocks(10, 4)] == [[1, 3], [4], [8, 9]]


def test_blocked_passes_equal_one_block() -> None:
    features, labels = _data()
    runner = LocalBlocks(block_rows=97)
    for exact_limit in (10_000, 100):  # exact search, then the IVF-PQ index
        whole = knn_graph(features, 5, exact_limit=exact_limit)
        blocked = knn_graph(features, 5, exact_limit=exact_limit, runner=runner)
        assert np.array_equal(whole[0], blocked[0]) and np.allclose(whole[1], blocked[1])
    one = OutOfFoldLogistic(random_state=0).fit(features, labels, np.ones(labels.size), n_classes=3)
    many = OutOfFoldLogistic(random_state=0, runner=runner).fit(features, labels, np.ones(labels.size), n_classes=3)
    assert np.array_equal(one.probs_, many.probs_)
    assert runner.info["blocks"] == 7 and {p["fn"] for p in runner.info["passes"]} == {"search_block", "fold_probs_block"}


def test_merged_block_coresets_estimate_the_whole_loss() -> None:
    features, labels = _data(n=3000, seed=2)
    weight = np.ones(labels.size)
    train = np.arange(labels.size)
    options = dict(m=600, C=0.01, standardizer=Standardizer().fit(features), n_classes=3, radius=0.01)
    for runner in (LocalBlocks(), LocalBlocks(block_rows=500)):
        rows, weights = sample_coreset_rows(features, labels, weight, train, random_state=0, runner=runner, **options)
        assert np.all(np.diff(rows) > 0) and 300 < rows.size < 900  # about m rows, each once
        assert abs(weights.sum() / weight.sum() - 1.0) < 0.1  # weights w/π keep the total
