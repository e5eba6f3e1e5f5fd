"""#13: above a size, a pilot on a sample decides whether the neighbour graph is worth building."""

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from coreclean import LabelIssueRanker
from coreclean.scoring import signal_set


def _data(seed, *, clustered):
    """Labels in a faint linear direction under a strong label-blind latent factor (the scale benchmark's
    synthetic data: neighbours find the factor, not the class), or in tight clusters (neighbours find the class)."""
    rng = np.random.default_rng(seed)
    n, d, k = 4000, 256, 5
    true = rng.integers(0, k, n)
    if clustered:
        features = rng.normal(size=(k, d))[true] + 0.5 * rng.normal(size=(n, d))
    else:
        loadings = rng.normal(size=(16, d)) / 4
        features = np.maximum(0.08 * rng.normal(size=(k, d))[true] + rng.normal(size=(n, 16)) @ loadings
                              + 0.25 * rng.normal(size=(n, d)), 0.0)
    flipped = rng.random(n) < 0.1
    noisy = np.where(flipped, (true + 1) % k, true)
    return features.astype(np.float32), noisy, flipped


@pytest.fixture
def small_pilot(monkeypatch):
    monkeypatch.setattr(signal_set, "NEIGHBOR_PILOT_ABOVE", 2000)
    monkeypatch.setattr(signal_set, "NEIGHBOR_PILOT_ROWS", 1500)


def test_the_graph_is_skipped_where_the_pilot_finds_the_vote_earns_nothing_and_the_ranking_stays(small_pilot,
                                                                                                 monkeypatch):
    features, noisy, flipped = _data(0, clustered=False)
    piloted = LabelIssueRanker(random_state=0).fit(features, noisy)
    assert "neighbors" not in piloted.signals_.__dict__ and "neighbor_pilot" in piloted.signals_.timings
    monkeypatch.setattr(signal_set, "NEIGHBOR_PILOT_ABOVE", 10**9)
    full = LabelIssueRanker(random_state=0).fit(features, noisy)
    assert "neighbors" in full.signals_.__dict__
    assert spearmanr(piloted.scores_, full.scores_).statistic > 0.99
    assert roc_auc_score(flipped, piloted.scores_) > roc_auc_score(flipped, full.scores_) - 0.005


def test_the_graph_is_built_where_the_pilot_finds_neighbours_carry_the_labels(small_pilot):
    features, noisy, _ = _data(1, clustered=True)
    ranker = LabelIssueRanker(random_state=0).fit(features, noisy)
    assert ranker.signals_.neighbor_vote_pays
    assert "neighbors" in ranker.signals_.__dict__


def test_no_pilot_runs_at_or_below_the_size_where_the_graph_is_always_built():
    features, noisy, _ = _data(2, clustered=False)
    ranker = LabelIssueRanker(random_state=0).fit(features, noisy)
    assert "neighbor_pilot" not in ranker.signals_.timings and "neighbors" in ranker.signals_.__dict__
