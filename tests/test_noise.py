"""Synthetic label noise (coreclean.simulate.noise): exact counts, the right kinds of flip, seeded."""

import numpy as np
import pytest

from coreclean.exceptions import InputValidationError
from coreclean.simulate.noise import flip_pairs, inject_noise


def test_uniform_flips_exactly_the_rate_to_other_classes_and_is_seeded():
    labels = np.repeat(np.arange(4), 50)
    noisy, flipped = inject_noise(labels, rate=0.1, random_state=3)
    assert flipped.sum() == 20 and np.array_equal(flipped, noisy != labels)
    assert set(np.unique(noisy[flipped])) <= {0, 1, 2, 3}
    again, _ = inject_noise(labels, rate=0.1, random_state=3)
    assert np.array_equal(noisy, again) and labels.tolist() == np.repeat(np.arange(4), 50).tolist()  # input untouched


def test_pairs_send_each_source_class_to_its_partner_only():
    labels = np.repeat(np.arange(3), 40)
    noisy, flipped = inject_noise(labels, rate=0.25, kind="pairs", pairs={0: 2}, random_state=0)
    assert flipped.sum() == 10 and (labels[flipped] == 0).all() and (noisy[flipped] == 2).all()


def test_nearest_flips_go_to_the_most_confusable_class():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0]])
    labels = np.repeat(np.arange(3), 60)
    features = (centers[labels] + rng.normal(scale=0.6, size=(labels.size, 2))).astype(np.float32)
    noisy, flipped = inject_noise(labels, rate=0.1, kind="nearest", features=features, random_state=0)
    assert flipped.sum() == 18
    assert set(zip(labels[flipped].tolist(), noisy[flipped].tolist())) <= {(0, 1), (1, 0)}  # never to the far class


def test_flip_pairs_is_exact_and_refuses_too_few():
    labels = np.repeat(np.arange(3), 10)
    noisy, flipped = flip_pairs(labels, {0: 1, 2: 0}, 4, random_state=0)
    assert flipped.sum() == 8 and (noisy[labels == 0][flipped[labels == 0]] == 1).all()
    with pytest.raises(InputValidationError, match="cannot flip 11"):
        flip_pairs(labels, {0: 1}, 11)


@pytest.mark.parametrize("kwargs, message", [({"rate": 1.0}, "rate must be"), ({"rate": 0.1, "kind": "odd"}, "kind"),
                                             ({"rate": 0.1, "kind": "nearest"}, "needs features")])
def test_bad_arguments_are_one_clear_error(kwargs, message):
    with pytest.raises(InputValidationError, match=message):
        inject_noise(np.repeat([0, 1], 5), **kwargs)


def test_low_rate_pair_flips_total_the_rate_not_one_per_class():
    # Digits' P3 train split: ~120 a class. Rounding each class's share gave one flip per class at
    # both 0.5 % and 1 %, so the two settings were one; the total must follow the rate.
    labels = np.repeat(np.arange(10), [118, 120, 119, 122, 121, 120, 118, 121, 119, 120])
    totals = {rate: [int(inject_noise(labels, rate=rate, kind="pairs", random_state=seed)[1].sum())
                     for seed in range(5)] for rate in (0.005, 0.01)}
    assert totals == {0.005: [6] * 5, 0.01: [12] * 5}
    noisy, flipped = inject_noise(labels, rate=0.005, kind="pairs", random_state=0)
    assert (noisy[flipped] == (labels[flipped] + 1) % 10).all()
    classes_hit = {tuple(np.flatnonzero(np.bincount(labels[inject_noise(labels, rate=0.005, kind="pairs",
                                                                        random_state=s)[1]], minlength=10)))
                   for s in range(5)}
    assert len(classes_hit) > 1  # which classes get the leftover flips changes with the seed


def test_whole_pair_shares_draw_as_before():
    # 1,000 a class at 0.5 %: every share is whole, so the flips (and the CIFAR-10 P3 rows) are unchanged.
    labels = np.repeat(np.arange(10), 1000)
    noisy, _ = inject_noise(labels, rate=0.005, kind="pairs", random_state=1000)
    rng = np.random.default_rng(1000)
    expected = labels.copy()
    for source in range(10):
        expected[rng.permutation(np.flatnonzero(labels == source))[:5]] = (source + 1) % 10
    assert np.array_equal(noisy, expected)
