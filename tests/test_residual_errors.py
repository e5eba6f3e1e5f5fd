"""Errors left among unreviewed samples: calibrated on the reviewer's verdicts, not collapsed by the review order."""

import numpy as np

from coreclean.sessions.errors_left import MIN_REVIEWED, estimate_residual_errors


def _scored_population(rng, n=20_000):
    """Scores in (0, 1) whose true error probability is the score itself."""
    scores = rng.beta(0.5, 4.0, n)
    return scores, rng.random(n) < scores


def test_top_ranked_reviews_extrapolate_to_the_unreviewed_tail():
    rng = np.random.default_rng(0)
    scores, is_error = _scored_population(rng)
    order = np.argsort(-scores)
    reviewed, rest = order[:2_000], order[2_000:]
    estimate = estimate_residual_errors(scores[reviewed], is_error[reviewed], scores[rest], prior_estimate=0.0)
    truth = is_error[rest].sum()
    assert estimate.method == "calibrated"
    assert abs(estimate.errors_left - truth) < 0.15 * truth


def test_random_reviews_give_the_hit_rate_times_the_pool():
    rng = np.random.default_rng(1)
    scores = rng.random(5_000)  # scores carry no information
    is_error = rng.random(5_000) < 0.1
    estimate = estimate_residual_errors(scores[:1_000], is_error[:1_000], scores[1_000:], prior_estimate=0.0)
    assert abs(estimate.errors_left - 4_000 * is_error[:1_000].mean()) < 40


def test_prior_stands_until_both_outcomes_are_seen_often_enough():
    scores = np.linspace(0.5, 0.9, MIN_REVIEWED + 5)
    all_errors = np.ones(scores.size, dtype=bool)
    assert estimate_residual_errors(scores, all_errors, np.full(10, 0.1), prior_estimate=7.0).method == "prior"
    few = estimate_residual_errors(scores[:5], np.array([1, 0, 1, 0, 1], bool), np.full(10, 0.1), prior_estimate=7.0)
    assert (few.errors_left, few.method) == (7.0, "prior")
    # 1,498 fixed and 2 kept (CIFAR-10N worse, round 3): the calibration would call almost everything an error
    nearly_all = np.ones(1_500, dtype=bool)
    nearly_all[:2] = False
    lopsided = estimate_residual_errors(np.linspace(0.6, 0.99, 1_500), nearly_all, np.full(40_000, 0.3),
                                        prior_estimate=19_000.0)
    assert (lopsided.errors_left, lopsided.method) == (19_000.0, "prior")


def test_unscored_decisions_are_ignored_and_scores_off_the_unit_interval_work():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=400) * 3  # not probabilities: used as they are
    is_error = rng.random(400) < 1 / (1 + np.exp(-scores))
    reviewed = np.r_[scores[:200], np.full(20, np.nan)]
    was_error = np.r_[is_error[:200], np.ones(20, bool)]
    estimate = estimate_residual_errors(reviewed, was_error, scores[200:], prior_estimate=0.0)
    assert estimate.method == "calibrated"
    assert abs(estimate.errors_left - is_error[200:].sum()) < 25


def test_the_larger_estimate_stands():
    rng = np.random.default_rng(3)
    scores, is_error = _scored_population(rng, n=5_000)
    order = np.argsort(-scores)
    reviewed, rest = order[:500], order[500:]
    calibrated = estimate_residual_errors(scores[reviewed], is_error[reviewed], scores[rest], prior_estimate=0.0)
    larger = estimate_residual_errors(scores[reviewed], is_error[reviewed], scores[rest],
                                      prior_estimate=calibrated.errors_left + 100)
    assert (larger.errors_left, larger.method) == (calibrated.errors_left + 100, "prior")
