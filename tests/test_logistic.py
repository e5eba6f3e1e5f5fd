"""MultinomialLogistic: scikit-learn's objective and optimum, its defaults, and a warning where it stops early."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from coreclean.scoring.linear.logistic import MultinomialLogistic
from coreclean.scoring.ranker import LabelIssueRanker


def _data(seed: int = 0, n_classes: int = 4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, 600)
    features = (rng.normal(size=(n_classes, 20))[labels] + rng.normal(size=(600, 20))).astype(np.float32)
    return features, labels


@pytest.mark.parametrize("C", [0.01, 1.0])
def test_reaches_scikit_learns_optimum(C: float) -> None:
    features, labels = _data()
    weight = np.random.default_rng(1).uniform(0.5, 2.0, labels.size)
    ours = MultinomialLogistic(C=C, tol=1e-8, max_iter=1000).fit(features, labels, weight)
    theirs = LogisticRegression(C=C, tol=1e-10, max_iter=2000).fit(features.astype(np.float64), labels, sample_weight=weight)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=2e-4 * np.abs(theirs.coef_).max())
    # float32 features: their objective's rounding bounds the agreement (1.12e-4 with scikit-learn 1.9.1)
    np.testing.assert_allclose(ours.predict_proba(features), theirs.predict_proba(features), atol=2e-4)


def test_default_C_is_the_rankers() -> None:
    assert MultinomialLogistic().C == LabelIssueRanker().C == 0.01


def test_warns_when_it_stops_at_max_iter() -> None:
    features, labels = _data()
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        MultinomialLogistic(C=1.0, max_iter=2, tol=1e-10).fit(features, labels)


def test_two_classes_are_a_softmax_and_absent_classes_are_not_modelled() -> None:
    features, labels = _data(n_classes=2)
    model = MultinomialLogistic().fit(features, labels + 3)  # classes 3 and 4 only
    assert model.classes_.tolist() == [3, 4] and model.coef_.shape == (2, 20)
    np.testing.assert_allclose(model.predict_proba(features).sum(axis=1), 1.0, rtol=1e-6)


def test_stacked_fit_reaches_each_models_own_optimum_on_raw_rows() -> None:
    """Fold models fitted in one L-BFGS run, standardisation folded in, equal the one-by-one fits on standardised rows."""
    from coreclean.scoring.linear.logistic import fit_stacked_logistic
    from coreclean.scoring.linear.standardize import Standardizer

    features, labels = _data(seed=3)
    features = features * 3.0 + 5.0  # far from standardised: the folded scaling must undo it
    folds = np.random.default_rng(2).integers(0, 3, labels.size)
    weight = np.random.default_rng(4).uniform(0.5, 2.0, labels.size)
    fold_weight = np.stack([np.where(folds != f, weight, 0.0) for f in range(3)], axis=1)
    scaler = Standardizer().fit(features)
    stacked = fit_stacked_logistic(features, labels, fold_weight, n_classes=4, C=0.05, mean=scaler.mean_,
                                   scale=scaler.scale_, tol=1e-8, max_iter=1000)
    for f, model in enumerate(stacked):
        train = folds != f
        alone = MultinomialLogistic(C=0.05, tol=1e-8, max_iter=1000).fit(scaler.transform(features[train]),
                                                                         labels[train], weight[train])
        np.testing.assert_allclose(model.coef_, alone.coef_, atol=1e-4 * np.abs(alone.coef_).max())
        np.testing.assert_allclose(model.intercept_, alone.intercept_, atol=1e-3)
