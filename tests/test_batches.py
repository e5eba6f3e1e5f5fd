"""Batch choice and the review budget across classes (coreclean.sessions.batches), as pure functions."""

import numpy as np

from coreclean.sessions.batches import allocate_reviews, choose_batch


def test_reviews_follow_the_errors_left_above_a_floor():
    counts = allocate_reviews([10.0, 3.0, 0.0], [100, 100, 100], 60, floor=5)
    assert counts.tolist() == [40, 15, 5] and counts.sum() == 60


def test_no_class_gets_more_than_it_has_and_the_rest_goes_elsewhere():
    counts = allocate_reviews([50.0, 1.0, 1.0], [10, 100, 100], 60, floor=5)
    assert counts.tolist() == [10, 25, 25]


def test_floors_alone_can_exhaust_a_small_round_and_unknown_estimates_split_evenly():
    assert allocate_reviews([1.0, 1.0, 1.0], [2, 100, 100], 7, floor=5).tolist() == [2, 5, 0]
    assert allocate_reviews([np.nan, -3.0, 0.0], [50, 50, 50], 30, floor=2).tolist() == [10, 10, 10]
    assert allocate_reviews([5.0, 5.0], [3, 4], 100, floor=1).tolist() == [3, 4]  # everything there is


def test_choose_batch_takes_each_class_top_undecided_kept_samples():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95, 0.5])
    labels = np.array([0, 0, 0, 0, 1, 1])
    weights = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # row 1 dropped
    decided = np.array([True, False, False, False, False, False])  # row 0 decided
    assert choose_batch(scores, labels, weights, decided, [0, 1], [2, 1]) == [(2, 0), (3, 0), (4, 1)]
