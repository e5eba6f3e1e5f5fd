"""Errors left among unreviewed samples: the ranker's posterior, recalibrated on the reviewer's verdicts."""

import numpy as np
import pytest
from scipy.special import expit, logit

from coreclean.sessions.errors_left import calibrated_error_probabilities


def _population(rng, n=20_000, power=1.0):
    """Scores in (0, 1); the true error probability is ``score ** power`` (1: calibrated)."""
    scores = rng.beta(0.5, 4.0, n)
    return scores, rng.random(n) < scores**power


def test_without_verdicts_the_scores_are_the_estimate():
    scores = np.array([0.1, 0.5, 0.9])
    assert np.allclose(calibrated_error_probabilities(np.zeros(0), np.zeros(0, bool), scores), scores)


def test_calibrated_scores_stay_calibrated_in_the_unreviewed_tail():
    rng = np.random.default_rng(0)
    scores, is_error = _population(rng)
    order = np.argsort(-scores)
    reviewed, rest = order[:2_000], order[2_000:]
    estimate = calibrated_error_probabilities(scores[reviewed], is_error[reviewed], scores[rest]).sum()
    truth = is_error[rest].sum()
    assert abs(estimate - truth) < 0.15 * truth


def _shifted_population(rng, shift, n=20_000, saturate_above=None):
    """Scores in (0, 1) whose true error odds are the score's odds times ``e**shift``; above ``saturate_above``, 0.97."""
    scores = rng.beta(0.3, 4.0, n)
    truth = expit(logit(scores) + shift)
    if saturate_above is not None:
        truth = np.where(scores > saturate_above, 0.97, truth)
    return scores, rng.random(n) < truth


def test_overconfident_scores_are_corrected_by_the_verdicts():
    rng = np.random.default_rng(3)
    scores, is_error = _shifted_population(rng, -1.5)  # the true error odds are a fifth of the score's
    order = np.argsort(-scores)
    reviewed, rest = order[:3_000], order[3_000:]
    raw = scores[rest].sum()
    truth = is_error[rest].sum()
    estimate = calibrated_error_probabilities(scores[reviewed], is_error[reviewed], scores[rest]).sum()
    assert raw > 2 * truth  # what the scores alone would say
    assert abs(estimate - truth) < 0.2 * truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_saturated_top_does_not_hide_the_errors_of_the_bulk(seed):
    # What CIFAR-10N's human noise looks like: nearly every top sample is an error, and below the top
    # the scores undersell the errors by a constant factor in the odds. A map with a slope read off the
    # top steepened (b ~ 1.7) and said about half of the errors left.
    rng = np.random.default_rng(seed)
    scores, is_error = _shifted_population(rng, 0.8, saturate_above=0.5)
    order = np.argsort(-scores)
    reviewed, rest = order[:500], order[500:]
    truth = is_error[rest].sum()
    estimate = calibrated_error_probabilities(scores[reviewed], is_error[reviewed], scores[rest]).sum()
    assert estimate > scores[rest].sum()  # the verdicts raise the raw scores' count
    assert 0.8 * truth < estimate < 1.5 * truth


def test_uninformative_scores_give_the_hit_rate_times_the_pool():
    rng = np.random.default_rng(1)
    scores = rng.random(5_000)  # scores carry no information
    is_error = rng.random(5_000) < 0.1
    estimate = calibrated_error_probabilities(scores[:1_000], is_error[:1_000], scores[1_000:]).sum()
    assert abs(estimate - 4_000 * is_error[:1_000].mean()) < 0.25 * 4_000 * is_error[:1_000].mean()


def test_unscored_decisions_are_left_out():
    with_nan = calibrated_error_probabilities(np.array([0.9, np.nan, 0.8]), np.array([True, False, True]),
                                              np.array([0.2, 0.3]))
    without = calibrated_error_probabilities(np.array([0.9, 0.8]), np.array([True, True]), np.array([0.2, 0.3]))
    assert np.allclose(with_nan, without)


def test_each_class_gets_its_own_shift_when_its_verdicts_disagree_with_the_others():
    """One class's ranker is overconfident (true odds e^-1.5 the score's), the other's underconfident
    (e^+1.5): one shared shift splits the difference and misses both; each class's own shift finds each."""
    rng = np.random.default_rng(3)
    scores, is_error, classes = [], [], []
    for c, shift in enumerate([-1.5, 1.5]):
        s, e = _shifted_population(rng, shift, n=10_000)
        scores.append(s), is_error.append(e), classes.append(np.full(s.size, c))
    scores, is_error, classes = np.concatenate(scores), np.concatenate(is_error), np.concatenate(classes)
    order = np.argsort(-scores)
    reviewed, rest = order[:1_500], order[1_500:]
    per_sample = calibrated_error_probabilities(scores[reviewed], is_error[reviewed], scores[rest],
                                                reviewed_classes=classes[reviewed], unreviewed_classes=classes[rest])
    shared = calibrated_error_probabilities(scores[reviewed], is_error[reviewed], scores[rest])
    for c in (0, 1):
        of_c = classes[rest] == c
        truth = is_error[rest][of_c].sum()
        assert abs(per_sample[of_c].sum() - truth) < 0.35 * truth
        assert abs(shared[of_c].sum() - truth) > 0.5 * truth


def test_classes_must_be_given_for_both_reviewed_and_unreviewed_samples():
    with pytest.raises(ValueError, match="together"):
        calibrated_error_probabilities(np.array([0.9]), np.array([True]), np.array([0.2]),
                                       reviewed_classes=np.array([0]))
