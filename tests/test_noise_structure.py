"""The noise prior's structure: kept where the noise piles on pairs, flattened where it is uniform."""

import numpy as np

from coreclean.scoring.noise_prior import confident_disagreements, estimate_noise_structure, fit_concentration


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
