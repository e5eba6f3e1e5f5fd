"""Input checks at the public boundary (coreclean._internal.validation): one clear error, never a silent cast."""

import numpy as np
import pytest

from coreclean._internal.validation import (
    check_features,
    check_labels,
    check_random_state,
    check_sample_weight,
    sklearn_seed,
)
from coreclean.exceptions import InputValidationError


def test_features_become_contiguous_float32_and_bad_rows_are_named():
    out = check_features(np.arange(6, dtype=np.int64).reshape(3, 2))
    assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
    bad = np.ones((4, 2))
    bad[2, 1] = np.nan
    with pytest.raises(InputValidationError, match=r"first: \[2\]"):
        check_features(bad)
    for shape in ((3,), (0, 2)):
        with pytest.raises(InputValidationError):
            check_features(np.ones(shape))
    with pytest.raises(InputValidationError, match="numeric"):
        check_features(np.array([["a", "b"]]))


def test_labels_must_be_whole_in_range_and_match_the_rows():
    assert check_labels(np.array([0.0, 1.0, 2.0]), 3).dtype == np.int64
    for labels, message in (([0, 1], "3 rows"), ([0.5, 1, 2], "non-integer"), (["a", "b", "c"], "dtype"),
                            ([0, -1, 1], ">= 0")):
        with pytest.raises(InputValidationError, match=message):
            check_labels(np.array(labels), 3)
    with pytest.raises(InputValidationError, match="not a known class"):
        check_labels(np.array([0, 1, 3]), 3, n_classes=3)


def test_sample_weight_defaults_to_ones_and_refuses_negatives():
    assert check_sample_weight(None, 3).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(InputValidationError, match=">= 0"):
        check_sample_weight([1.0, -1.0, 1.0], 3)
    with pytest.raises(InputValidationError, match="shape"):
        check_sample_weight([1.0, 1.0], 3)


def test_random_state_forms_agree():
    assert check_random_state(5).integers(0, 10**9) == np.random.default_rng(5).integers(0, 10**9)
    generator = np.random.default_rng(0)
    assert check_random_state(generator) is generator
    with pytest.raises(InputValidationError):
        check_random_state("seed")
    assert 0 <= sklearn_seed(np.random.default_rng(0)) < 2**31 - 1
