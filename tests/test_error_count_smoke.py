"""Keep ``benchmarks.error_count`` measuring what its table claims, on digits (no shared data needed)."""

from __future__ import annotations

import numpy as np

from benchmarks.data import load_digits_dataset
from benchmarks.error_count import COUNTS, counterfactual_error_count, measure
from coreclean.simulate.noise import inject_noise


def test_counts_on_digits_uniform_noise_where_the_counterfactual_bound_beats_the_scores_sum() -> None:
    data = load_digits_dataset()
    noisy = inject_noise(data.labels, rate=0.2, kind="uniform", n_classes=data.n_classes, random_state=1000)[0]
    row = measure(data.features, noisy, data.labels, seed=0)
    truth = row["n_errors"]
    assert truth == int((noisy != data.labels).sum()) and set(row["counts"]) == set(COUNTS)
    counts = row["counts"]
    # Errors planted at random are what the bound assumes: it lands near the truth, the sum of scores does not.
    assert abs(counts["counterfactual"] - truth) < 0.15 * truth
    assert abs(counts["counterfactual"] - truth) < abs(counts["sum_of_scores"] - truth)
    for name in COUNTS:
        assert 0 <= row[name]["ece"] <= 1 and 0 <= row[name]["top_ece"] <= 1


def test_counterfactual_bound_needs_twenty_scores_in_its_tail() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=30)
    labels = probs.argmax(axis=1)  # every label agrees with its model: no given score reaches the tail
    assert counterfactual_error_count(probs, labels, np.diag(np.bincount(labels, minlength=3)).astype(float)) is None
