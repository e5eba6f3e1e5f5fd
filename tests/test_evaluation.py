"""AUROC of out-of-fold probabilities, fixed folds, bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from coreclean.evaluation.auroc import auroc, auroc_per_class, bootstrap_auroc, paired_auroc_change
from coreclean.scoring.linear.folds import make_folds


def out_of_fold_probs(features, labels):
    return cross_val_predict(LogisticRegression(C=0.1), features, labels, cv=5, method="predict_proba")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    features = (rng.normal(size=(3, 8))[labels] + rng.normal(size=(400, 8)) * 1.5).astype(np.float32)
    return features, labels


def test_auroc_matches_sklearn_with_weights(data):
    features, labels = data
    probs = out_of_fold_probs(features, labels)
    weights = np.random.default_rng(1).random(labels.size)
    assert auroc(probs, labels) == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    assert auroc(probs, labels, weights) == pytest.approx(
        roc_auc_score(labels, probs, multi_class="ovr", sample_weight=weights))
    weights[:50] = 0.0  # dropped samples are left out
    keep = weights > 0
    assert auroc_per_class(probs, labels, weights)[1] == pytest.approx(
        roc_auc_score(labels[keep] == 1, probs[keep, 1], sample_weight=weights[keep]))


def test_folds_are_fixed_and_stratified(data):
    _, labels = data
    folds = make_folds(labels, 5, random_state=0)
    assert np.array_equal(folds, make_folds(labels, 5, random_state=0))
    for k in range(3):
        counts = np.bincount(folds[labels == k], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_bootstrap_interval_and_paired_change(data):
    features, labels = data
    probs = out_of_fold_probs(features, labels)
    point, low, high = bootstrap_auroc(probs, labels, n_boot=100, random_state=0)
    assert low < point < high
    ones = np.ones(labels.size)
    assert paired_auroc_change((probs, labels, ones), (probs, labels, ones), n_boot=50, random_state=0) == (0.0, 0.0, 0.0)
    noisy = labels.copy()
    noisy[:60] = (noisy[:60] + 1) % 3
    noisy_probs = out_of_fold_probs(features, noisy)
    change, low, high = paired_auroc_change((noisy_probs, noisy, ones), (probs, labels, ones), n_boot=100,
                                            random_state=0)
    assert low > 0 and low <= change <= high  # fixing 60 labels raises AUROC, and the paired interval sees it
