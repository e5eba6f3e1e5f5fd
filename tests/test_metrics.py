"""Ranking metrics of coreclean.evaluation.ranking_metrics against scikit-learn and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from coreclean.exceptions import InputValidationError
from coreclean.evaluation.ranking_metrics import (
    average_precision,
    errors_found_curve,
    precision_at_k,
    ranking_auroc,
    ranking_report,
    recall_at_fraction,
)


@pytest.fixture
def ranked() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    is_error = rng.random(500) < 0.1
    scores = rng.normal(size=500) + 1.5 * is_error
    return scores, is_error


def test_auroc_and_ap_match_sklearn(ranked) -> None:
    scores, is_error = ranked
    assert ranking_auroc(scores, is_error) == pytest.approx(roc_auc_score(is_error, scores))
    assert average_precision(scores, is_error) == pytest.approx(average_precision_score(is_error, scores))


def test_auroc_counts_ties_as_half() -> None:
    scores = np.array([1.0, 1.0, 0.0, 0.0])
    is_error = np.array([True, False, True, False])
    assert ranking_auroc(scores, is_error) == pytest.approx(roc_auc_score(is_error, scores)) == 0.5


def test_precision_recall_and_curve_follow_the_stable_order() -> None:
    scores = np.array([0.9, 0.8, 0.8, 0.1, 0.5])
    is_error = np.array([True, False, True, False, True])
    # order: 0, 1, 2 (tie keeps index order), 4, 3
    assert precision_at_k(scores, is_error, 2) == 0.5
    assert precision_at_k(scores, is_error, 10) == 0.6  # k clipped to n_samples
    assert recall_at_fraction(scores, is_error, 0.6) == pytest.approx(2 / 3)  # 3 reviewed
    assert errors_found_curve(scores, is_error).tolist() == [1, 1, 2, 3, 3]
    assert errors_found_curve(scores, is_error, np.array([0, 3, 99])).tolist() == [0, 2, 3]


def test_ranking_report_keys_and_values(ranked) -> None:
    scores, is_error = ranked
    report = ranking_report(scores, is_error, k=100)
    n_errors = int(is_error.sum())
    assert report["n_errors"] == n_errors and report["n_samples"] == 500
    assert report["precision_at_100"] == precision_at_k(scores, is_error, 100)
    assert report["precision_at_half_errors"] == precision_at_k(scores, is_error, int(np.ceil(n_errors / 2)))
    assert report["recall_at_5pct"] == recall_at_fraction(scores, is_error, 0.05)
    assert report["recall_at_10pct"] == recall_at_fraction(scores, is_error, 0.10)
    assert report["auroc"] == pytest.approx(ranking_auroc(scores, is_error))


def test_no_errors_gives_nan_not_a_crash() -> None:
    scores = np.arange(5.0)
    is_error = np.zeros(5, dtype=bool)
    assert np.isnan(ranking_auroc(scores, is_error))
    assert np.isnan(average_precision(scores, is_error))
    assert np.isnan(recall_at_fraction(scores, is_error, 0.5))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InputValidationError, match="same length"):
        ranking_auroc(np.zeros(3), np.zeros(4, dtype=bool))
    with pytest.raises(InputValidationError, match="NaN"):
        ranking_auroc(np.array([np.nan, 1.0]), np.array([True, False]))
    with pytest.raises(InputValidationError, match="boolean"):
        ranking_auroc(np.zeros(2), np.array([2, 0]))
    with pytest.raises(InputValidationError, match="k must be"):
        precision_at_k(np.zeros(2), np.array([True, False]), 0)
    with pytest.raises(InputValidationError, match="fraction"):
        recall_at_fraction(np.zeros(2), np.array([True, False]), 1.5)


def test_recall_at_fraction_reviews_exactly_the_fraction():
    """#11.18: ceil(0.07 * 100) in floating point reviewed 8 samples, not 7."""
    from coreclean.evaluation.ranking_metrics import recall_at_fraction

    scores = np.arange(100, 0, -1, dtype=np.float64)  # sample i ranked i-th
    is_error = np.zeros(100, dtype=bool)
    is_error[7] = True  # the 8th reviewed: outside a budget of exactly 7
    assert recall_at_fraction(scores, is_error, 0.07) == 0.0
    assert recall_at_fraction(scores, is_error, 0.08) == 1.0


def test_average_precision_counts_tied_scores_as_one_threshold() -> None:
    # the error at index 2 ties a correct label at index 1: one threshold, shared precision 2/3
    scores = np.array([0.9, 0.8, 0.8, 0.1])
    is_error = np.array([True, False, True, False])
    assert average_precision(scores, is_error) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    assert average_precision(scores, is_error) == pytest.approx(average_precision_score(is_error, scores))
