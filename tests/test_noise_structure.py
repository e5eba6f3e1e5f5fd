"""The noise prior's structure: kept where the noise piles on pairs, flattened where it is uniform."""

import numpy as np
import pytest

from coreclean.scoring.confident_joint import true_label_posterior
from coreclean.scoring.noise_prior import (asymmetry_weight, confident_disagreements, estimate_noise_structure,
                                          fit_concentration, flat_joint)


def _disagreement_rows(rng, n_classes, per_row, pair_share):
    """Off-diagonal counts: each row puts ``pair_share`` of its errors on class ``row + 1``, the rest uniformly."""
    counts = np.zeros((n_classes, n_classes))
    for row in range(n_classes):
        others = [k for k in range(n_classes) if k != row]
        weights = np.full(len(others), (1 - pair_share) / len(others))
        weights[others.index((row + 1) % n_classes)] += pair_share
        counts[row, others] = rng.multinomial(per_row, weights)
    return counts


def test_concentration_is_large_for_uniform_counts_and_small_for_pairs():
    rng = np.random.default_rng(0)
    uniform = fit_concentration(_disagreement_rows(rng, 10, 90, pair_share=0.0))
    pairs = fit_concentration(_disagreement_rows(rng, 10, 90, pair_share=0.9))
    assert uniform > 100.0
    assert pairs < 5.0


def test_concentration_without_counts_is_flat():
    assert fit_concentration(np.zeros((5, 5))) > 1e4


def _probs_with_noise(kind, rng, n_per_class=400, n_classes=5, rate=0.2):
    """Perfectly confident true-class probabilities, and labels flipped uniformly or to the next class."""
    truth = np.repeat(np.arange(n_classes), n_per_class)
    probs = np.full((truth.size, n_classes), 0.02)
    probs[np.arange(truth.size), truth] = 1 - 0.02 * (n_classes - 1)
    labels = truth.copy()
    flip = rng.random(truth.size) < rate
    if kind == "pairs":
        labels[flip] = (truth[flip] + 1) % n_classes
    else:
        labels[flip] = (truth[flip] + rng.integers(1, n_classes, flip.sum())) % n_classes
    return probs, labels


def test_pair_flips_keep_their_structure_and_uniform_noise_is_flat():
    rng = np.random.default_rng(1)
    probs, labels = _probs_with_noise("pairs", rng)
    pairs = estimate_noise_structure(probs, labels)
    off = pairs.joint - np.diag(np.diag(pairs.joint))
    # labelled (k+1) means truly k: the mass sits on the column before each row
    for row in range(5):
        assert off[row].argmax() == (row - 1) % 5
        assert off[row, (row - 1) % 5] > 0.9 * off[row].sum()

    probs, labels = _probs_with_noise("uniform", rng)
    uniform = estimate_noise_structure(probs, labels)
    off = uniform.joint - np.diag(np.diag(uniform.joint))
    shares = off[~np.eye(5, dtype=bool)].reshape(5, 4) / off.sum(axis=1, keepdims=True)
    assert np.abs(shares - 0.25).max() < 0.05
    assert uniform.concentration > 10 * pairs.concentration


def test_joint_keeps_class_sizes_and_drops_weight_zero_samples():
    rng = np.random.default_rng(2)
    probs, labels = _probs_with_noise("pairs", rng)
    weight = np.ones(labels.size)
    weight[:100] = 0.0
    structure = estimate_noise_structure(probs, labels, sample_weight=weight)
    np.testing.assert_allclose(structure.joint.sum(axis=1), np.bincount(labels[100:], minlength=5))


def test_disagreements_ignore_classes_nobody_carries():
    probs = np.array([[0.1, 0.1, 0.8], [0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    labels = np.array([0, 0, 1])
    counts = confident_disagreements(probs, labels, quantile=0.5)
    assert counts[:, 2].sum() == 0  # class 2 has no labelled sample, so no threshold
    assert counts[1, 0] == 1  # labelled 1, confidently a 0


def test_confirmed_flips_restore_the_structure_once_the_pool_runs_dry():
    rng = np.random.default_rng(3)
    probs, labels = _probs_with_noise("uniform", rng, rate=0.05)
    without = estimate_noise_structure(probs, labels)
    flips = np.zeros((5, 5))
    flips[1, 0] = 40  # a reviewer has corrected 40 samples labelled 1 that were 0s
    with_flips = estimate_noise_structure(probs, labels, known_flips=flips)
    share = lambda joint: joint[1, 0] / (joint[1].sum() - joint[1, 1])  # noqa: E731
    assert share(without.joint) < 0.4
    assert share(with_flips.joint) > 0.6
    np.testing.assert_allclose(with_flips.joint.sum(axis=1), without.joint.sum(axis=1))


def test_ranker_remembers_the_given_labels_of_relabelled_samples():
    from coreclean.scoring.ranker import LabelIssueRanker

    rng = np.random.default_rng(4)
    features = rng.standard_normal((120, 8)).astype(np.float32)
    labels = np.repeat(np.arange(3), 40)
    ranker = LabelIssueRanker(random_state=0, n_neighbors=5).fit(features, labels)
    ranker.relabel([0, 1], [2, 2]).rescore()
    assert ranker.signals_.given_labels[:2].tolist() == [0, 0]
    assert ranker.labels_[:2].tolist() == [2, 2]


# --- trust from asymmetry: symmetric or chance counts -> the flat transition (no prior), directional -> the structure


def _two_suspects(n_flips, n_per_class=400, n_classes=5):
    """Confident probabilities, ``n_flips`` samples of class 0 labelled 1, and two suspects appended.

    Suspect A is labelled 2 with P(2 | x) = 0.025 and P(3 | x) = 0.88 (a confusion nobody else shows);
    suspect B is labelled 1 with P(1 | x) = 0.06 and P(0 | x) = 0.91 (the confusion of the flips).
    """
    truth = np.repeat(np.arange(n_classes), n_per_class)
    probs = np.full((truth.size, n_classes), 0.02)
    probs[np.arange(truth.size), truth] = 0.92
    labels = truth.copy()
    labels[:n_flips] = 1

    def suspect(given, p_given, other, p_other):
        row = np.full(n_classes, (1 - p_given - p_other) / (n_classes - 2))
        row[given], row[other] = p_given, p_other
        return row

    probs = np.vstack([probs, suspect(2, 0.025, 3, 0.88), suspect(1, 0.06, 0, 0.91)])
    return probs, np.r_[labels, 2, 1]


def _p_wrong(probs, labels, joint):
    return 1 - true_label_posterior(probs, labels, joint)[np.arange(labels.size), labels]


def test_asymmetry_weight_is_zero_for_symmetric_counts_of_any_size_and_high_for_directional_ones():
    sizes = np.full(4, 1000.0)
    assert asymmetry_weight(np.zeros((4, 4)), sizes) == 0.0
    symmetric = np.array([[0, 300, 5, 5], [300, 0, 5, 5], [5, 5, 0, 40], [5, 5, 40, 0]], dtype=float)
    assert asymmetry_weight(symmetric, sizes) == 0.0  # a model's ambiguity: many counts, as many each way
    directional = symmetric.copy()
    directional[0, 1] += 200  # 200 class-1 samples labelled 0, none the other way
    assert asymmetry_weight(directional, sizes) > 0.8
    assert asymmetry_weight(directional, sizes, n_sd=0) > asymmetry_weight(directional, sizes, n_sd=3)
    halved = directional.copy()
    halved[:, 1] *= 2  # class 1 twice the size: its reverse counts are rescaled, the asymmetry stays
    assert asymmetry_weight(halved, np.array([1000.0, 2000.0, 1000.0, 1000.0])) > 0.5
    with pytest.raises(ValueError):
        asymmetry_weight(directional, sizes, n_sd=-1)


def test_ambiguity_counted_both_ways_gets_the_flat_prior():
    """Classes 0 and 1 look alike (40% of each is confidently predicted as the other), no label is wrong:
    the prior must not make "0 labels are often 1s" a reason to suspect."""
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 300)
    probs = rng.dirichlet(np.full(4, 0.3), size=truth.size) * 0.1
    probs[np.arange(truth.size), truth] += 0.9
    confusable = np.flatnonzero(truth < 2)[rng.random((truth < 2).sum()) < 0.4]
    probs[confusable] = probs[confusable][:, [1, 0, 2, 3]]
    structure = estimate_noise_structure(probs, truth)
    assert structure.disagreements[0, 1] > 10 and structure.disagreements[1, 0] > 10
    assert structure.evidence_weight == 0.0
    flat = flat_joint(np.bincount(truth).astype(float), structure.joint.sum() - np.trace(structure.joint))
    np.testing.assert_allclose(structure.joint, flat)


def test_flat_transition_ranks_as_the_probabilities_alone():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.full(4, 0.7), size=400)
    labels = np.repeat(np.arange(4), 100)
    p_wrong = _p_wrong(probs, labels, flat_joint(np.full(4, 100.0), 30.0))
    assert np.array_equal(np.argsort(p_wrong), np.argsort(1 - probs[np.arange(400), labels]))


def test_few_counts_shrink_toward_the_flat_transition():
    probs, labels = _two_suspects(n_flips=2)
    scaled = estimate_noise_structure(probs, labels)
    assert scaled.disagreements.sum() == 2 and scaled.evidence_weight == 0.0  # two counts: chance
    assert estimate_noise_structure(probs, labels, n_sd=0).evidence_weight == pytest.approx(0.5, abs=0.02)  # X² 2, df 1
    flat = flat_joint(np.bincount(labels).astype(float), scaled.joint.sum() - np.trace(scaled.joint))
    assert np.allclose(scaled.joint, flat)
    before, after = _p_wrong(probs, labels, scaled.structured), _p_wrong(probs, labels, scaled.joint)
    assert before[-1] > before[-2]  # two chance counts made B's confusion look like the noise's favourite
    assert after[-2] > after[-1]  # scaled: A, whose label has 0.025 against 0.88, comes first, as without a prior


def test_many_counts_keep_the_structured_prior():
    probs, labels = _two_suspects(n_flips=120)
    scaled = estimate_noise_structure(probs, labels)
    assert scaled.evidence_weight > 0.9  # 120 class-0 samples labelled 1, none the other way
    assert estimate_noise_structure(probs, labels, n_sd=3).evidence_weight > 0.85
    row = scaled.joint[1] - np.eye(5)[1] * scaled.joint[1, 1]
    assert row[0] > 0.8 * row.sum()
    p_wrong = _p_wrong(probs, labels, scaled.joint)
    assert p_wrong[-1] > p_wrong[-2]  # B's confusion is the noise's: it comes first
    assert np.allclose(scaled.joint, scaled.structured, rtol=0.2, atol=2.0)
