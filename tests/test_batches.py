"""Batch choice and the review budget across classes (coreclean.sessions.batches), as pure functions."""

import numpy as np

from coreclean.sessions.batches import allocate_by_score, choose_batch


def test_reviews_past_the_floor_go_to_the_highest_scores_of_any_class():
    scores = [np.array([0.9, 0.8, 0.7, 0.1]), np.array([0.95, 0.2, 0.05]), np.array([0.3, 0.01])]
    counts = allocate_by_score(scores, 6, floor=1)
    # floors take 0.9, 0.95, 0.3; the next three highest left are 0.8, 0.7 (class 0) and 0.2 (class 1)
    assert counts.tolist() == [3, 2, 1]


def test_no_class_gets_more_than_it_has_and_ties_go_to_the_earlier_class():
    scores = [np.array([0.5, 0.5]), np.array([0.5, 0.5, 0.5, 0.5])]
    assert allocate_by_score(scores, 5, floor=1).tolist() == [2, 3]
    assert allocate_by_score(scores, 100, floor=1).tolist() == [2, 4]  # everything there is
    assert allocate_by_score(scores, 3, floor=0).tolist() == [2, 1]


def test_floors_alone_can_exhaust_a_small_round():
    scores = [np.full(2, 0.9), np.full(100, 0.5), np.full(100, 0.4)]
    assert allocate_by_score(scores, 7, floor=5).tolist() == [2, 5, 0]


def test_choose_batch_takes_each_class_top_undecided_kept_samples():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95, 0.5])
    labels = np.array([0, 0, 0, 0, 1, 1])
    weights = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # row 1 dropped
    decided = np.array([True, False, False, False, False, False])  # row 0 decided
    assert choose_batch(scores, labels, weights, decided, [0, 1], [2, 1]) == [(2, 0), (3, 0), (4, 1)]
