"""Calibration of P(label wrong): known inputs give known ECE, MCE and reliability bins."""

import numpy as np
import pytest

from coreclean.evaluation.calibration import (calibration_report, expected_calibration_error,
                                              maximum_calibration_error, reliability_bins)
from coreclean.exceptions import InputValidationError


def test_a_claim_matching_the_error_rate_has_zero_ece():
    probs = np.full(100, 0.25)
    errors = np.arange(100) < 25
    assert expected_calibration_error(probs, errors) == pytest.approx(0.0)
    assert maximum_calibration_error(probs, errors) == pytest.approx(0.0)


def test_two_bins_give_the_count_weighted_gap_and_the_largest_gap():
    # 10 claims of 0.05 with no error (gap 0.05), 30 claims of 0.95 with 15 errors (gap 0.45)
    probs = np.r_[np.full(10, 0.05), np.full(30, 0.95)]
    errors = np.r_[np.zeros(10, bool), np.arange(30) < 15]
    assert expected_calibration_error(probs, errors) == pytest.approx(0.25 * 0.05 + 0.75 * 0.45)
    assert maximum_calibration_error(probs, errors) == pytest.approx(0.45)
    bins = reliability_bins(probs, errors)
    assert bins.counts.tolist() == [10] + [0] * 8 + [30]
    assert bins.error_rate[9] == pytest.approx(0.5) and np.isnan(bins.error_rate[4])


def test_one_falls_in_the_last_bin_and_zero_in_the_first():
    bins = reliability_bins([0.0, 1.0, 0.5], [False, True, True], n_bins=4)
    assert bins.counts.tolist() == [1, 0, 1, 1]


def test_report_reads_the_top_of_the_scores_and_counts_expected_errors():
    # top 10 % = the 10 claims of 0.9, 8 of them errors: top ECE 0.1; the 90 claims of 0.0 hold no error
    probs = np.r_[np.full(10, 0.9), np.zeros(90)]
    errors = np.r_[np.arange(10) < 8, np.zeros(90, bool)]
    report = calibration_report(probs, errors, top_fraction=0.1)
    assert report["top_ece"] == pytest.approx(0.1)
    assert report["ece"] == pytest.approx(0.1 * 0.1)
    assert report["expected_errors"] == pytest.approx(9.0) and report["n_errors"] == 8
    assert sum(report["bins"]["counts"]) == 100 and report["bins"]["mean_prob"][5] is None


@pytest.mark.parametrize("probs, errors", [([0.2, 1.5], [0, 1]), ([0.2, 0.3], [0, 2]), ([0.2], [0, 1]), ([], [])])
def test_bad_input_says_what_to_pass(probs, errors):
    with pytest.raises(InputValidationError):
        expected_calibration_error(probs, errors)
