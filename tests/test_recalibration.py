"""One logit shift makes the claimed error count match a given count, and leaves the ranking alone."""

import numpy as np
import pytest

from coreclean.exceptions import InputValidationError
from coreclean.scoring.recalibration import shift_to_error_count


def test_shift_matches_the_count_and_keeps_the_order():
    rng = np.random.default_rng(0)
    p = rng.beta(0.3, 3.0, size=500)
    recalibrated, shift = shift_to_error_count(p, 80.0)
    assert recalibrated.sum() == pytest.approx(80.0, abs=1e-6)
    assert shift > 0 if p.sum() < 80 else shift < 0
    assert np.array_equal(np.argsort(recalibrated, kind="stable"), np.argsort(p, kind="stable"))


def test_a_count_already_matched_needs_no_shift():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    recalibrated, shift = shift_to_error_count(p, 1.0)
    assert shift == pytest.approx(0.0, abs=1e-8) and np.allclose(recalibrated, p)


@pytest.mark.parametrize("p, n", [([0.1, 0.2], 0.0), ([0.1, 0.2], 2.0), ([0.1, 1.2], 1.0), ([], 1.0)])
def test_impossible_requests_say_what_to_pass(p, n):
    with pytest.raises(InputValidationError):
        shift_to_error_count(np.asarray(p), n)
