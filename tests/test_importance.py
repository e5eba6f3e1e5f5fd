"""The importance engine: planted errors rank first, updates match a fresh fit, bad input is refused."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from coreclean.exceptions import InputValidationError
from coreclean.scoring.ranker import LabelIssueRanker
from coreclean.simulate.noise import inject_noise
from coreclean.scoring.methods import REGISTRY
from conftest import gaussian_blobs


def _blobs(n_per_class=60, n_classes=4, n_features=16, seed=0):
    return gaussian_blobs(np.random.default_rng(seed), n_per_class, n_features, n_classes, spread=3)


def test_planted_flip_ranks_at_top_of_its_class():
    features, labels = _blobs()
    noisy = labels.copy()
    planted = 7  # a class-0 sample now labelled 2
    noisy[planted] = 2
    ranker = LabelIssueRanker(random_state=0).fit(features, noisy)
    assert ranker.ranking(2)[0] == planted
    assert ranker.rank_in_class()[planted] == 1
    assert ranker.suggested_labels_[planted] == 0
    assert ranker.suggested_probs_[planted] > 0.5


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_ranker_scores_every_sample(method):
    features, labels = _blobs(n_per_class=30)
    noisy, flipped = inject_noise(labels, rate=0.1, random_state=0)
    ranker = LabelIssueRanker(method, random_state=0).fit(features, noisy)
    assert ranker.scores_.shape == (labels.size,)
    assert np.all(np.isfinite(ranker.scores_))
    if method not in ("random", "class_leverage"):
        # on well separated blobs every label-aware ranker puts the flips first
        top = np.argsort(-ranker.scores_)[: flipped.sum()]
        assert flipped[top].mean() >= 0.8


@pytest.mark.parametrize("method", ["coreclean", "pooled_confidence", "self_confidence", "normalized_margin",
                                    "knn_disagreement"])
def test_scores_under_a_label_are_the_scores_an_unreviewed_sample_has_with_it(method):
    features, labels = _blobs(n_per_class=40)
    noisy, flipped = inject_noise(labels, rate=0.15, random_state=0)
    ranker = LabelIssueRanker(method, random_state=0).fit(features, noisy)
    rows = np.arange(labels.size)
    np.testing.assert_allclose(ranker.scores_under(rows, ranker.labels_), ranker.scores_, atol=1e-5)
    wrong = np.flatnonzero(flipped)[:10]
    ranker.relabel(wrong, labels[wrong]).rescore()
    assert np.all(ranker.scores_[wrong] < 0.5)  # scored under the new, right label
    under_old = ranker.scores_under(wrong, noisy[wrong])
    assert np.all(under_old > ranker.scores_[wrong]) and np.median(under_old) > 0.5  # suspect under the label shown
    assert np.isnan(LabelIssueRanker("random", random_state=0).fit(features, noisy).scores_under([0], [0])).all()


def test_default_beats_label_blind_leverage_on_noisy_blobs():
    from sklearn.metrics import roc_auc_score

    features, labels = _blobs(n_per_class=80, n_features=32, seed=3)
    noisy, flipped = inject_noise(labels, rate=0.1, kind="pairs", random_state=1)
    default = LabelIssueRanker(random_state=0).fit(features, noisy)
    leverage = LabelIssueRanker("class_leverage", random_state=0).fit(features, noisy)
    assert roc_auc_score(flipped, default.scores_) > 0.95
    assert roc_auc_score(flipped, default.scores_) > roc_auc_score(flipped, leverage.scores_) + 0.1


def test_update_after_review_matches_fresh_fit():
    features, labels = _blobs(n_per_class=80, seed=1)
    noisy, flipped = inject_noise(labels, rate=0.15, random_state=2)
    ranker = LabelIssueRanker(random_state=0).fit(features, noisy)
    batch = ranker.ranking()[:20]
    wrong = batch[flipped[batch]]
    right = batch[~flipped[batch]]
    ranker.relabel(wrong, labels[wrong]).verify(right[:5]).drop(right[5:])
    ranker.rescore()

    fresh_labels = noisy.copy()
    fresh_labels[wrong] = labels[wrong]
    weight = np.ones(labels.size)
    weight[right[5:]] = 0
    same_folds = ranker.signals_.out_of_fold.folds_
    fresh = LabelIssueRanker(random_state=0, folds=same_folds).fit(features, fresh_labels, sample_weight=weight)
    fresh.trusted_[np.concatenate([wrong, right[:5]])] = True  # same trust, then a full re-fit
    fresh.signals_.__dict__.pop("out_of_fold")
    fresh._score()
    kept = weight > 0
    rho = spearmanr(ranker.scores_[kept], fresh.scores_[kept]).statistic
    assert rho >= 0.99
    np.testing.assert_array_equal(ranker.labels_, fresh_labels)
    assert np.all(ranker.sample_weight_[right[5:]] == 0)
    assert not np.isin(right[5:], ranker.ranking()).any()


def test_errors_per_class_estimates_planted_noise():
    features, labels = _blobs(n_per_class=100, seed=4)
    noisy, flipped = inject_noise(labels, rate=0.1, random_state=0)
    estimate = LabelIssueRanker(random_state=0).fit(features, noisy).errors_per_class()
    truth = np.bincount(noisy[flipped], minlength=4)
    assert np.abs(estimate - truth).max() <= 6


def test_small_class_is_scored_by_neighbours_and_flagged():
    features, labels = _blobs(n_per_class=40)
    labels = labels.copy()
    features = np.vstack([features, features[:2] + 0.01])
    labels = np.concatenate([labels, [4, 4]])  # a class of two near-copies of class-0 samples
    single = np.vstack([features, features[50:51]])
    single_labels = np.concatenate([labels, [5]])  # and a class with a single sample
    ranker = LabelIssueRanker(random_state=0).fit(single, single_labels)
    assert ranker.small_class_[-3:].all() and not ranker.small_class_[:-3].any()
    assert np.all(np.isfinite(ranker.scores_))
    assert ranker.suggested_labels_[-1] == single_labels[50]


def test_to_frame_has_the_documented_columns():
    features, labels = _blobs(n_per_class=20)
    frame = LabelIssueRanker(random_state=0).fit(features, labels).to_frame(
        sample_ids=[f"s{i}" for i in range(labels.size)], class_names=["a", "b", "c", "d"])
    for column in ("id", "label", "score", "rank_in_class", "suggested_label", "suggested_prob",
                   "predicted_label", "predicted_confidence", "margin", "given_label_prob"):
        assert column in frame
    assert frame["score"].is_monotonic_decreasing
    assert set(frame["label"]) <= {"a", "b", "c", "d"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f, y: (np.where(np.arange(f.size).reshape(f.shape) == 5, np.nan, f), y), "NaN or infinite"),
        (lambda f, y: (np.where(np.arange(f.size).reshape(f.shape) == 5, np.inf, f), y), "NaN or infinite"),
        (lambda f, y: (f, y[:-1]), "must match"),
        (lambda f, y: (f, np.where(y == 3, 9, y)), "not a known class"),
        (lambda f, y: (f[:, 0], y), "2-D"),
        (lambda f, y: (f, y.astype(str)), "integer class indices"),
    ],
)
def test_bad_input_is_a_clear_error(mutate, message):
    features, labels = _blobs(n_per_class=10)
    features, labels = mutate(features, labels)
    with pytest.raises(InputValidationError, match=message):
        LabelIssueRanker(random_state=0).fit(features, labels, n_classes=4)


def test_unknown_method_and_unfitted_use_are_errors():
    features, labels = _blobs(n_per_class=10)
    with pytest.raises(InputValidationError, match="unknown method"):
        LabelIssueRanker("nope").fit(features, labels)
    with pytest.raises(AttributeError, match="not fitted"):
        LabelIssueRanker().ranking()


def test_class_leverage_gram_path_equals_the_svd():
    from coreclean.scoring.methods import class_leverage_scores

    rng = np.random.default_rng(0)
    block = np.hstack([rng.normal(size=(300, 20)), np.ones((300, 1))])
    svd = np.square(np.linalg.svd(block, full_matrices=False)[0]).sum(axis=1)
    np.testing.assert_allclose(class_leverage_scores(block), svd, atol=1e-10)
    deficient = np.hstack([block, block[:, :1]])  # a repeated column: the SVD path must answer
    svd = np.square(np.linalg.svd(deficient, full_matrices=False)[0]).sum(axis=1)
    np.testing.assert_allclose(class_leverage_scores(deficient), svd, atol=1e-10)


def test_scikit_learn_estimator_contract():
    """#12: clone failed (no get_params), a bare AttributeError before fit, parameters checked nowhere."""
    import pytest
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    from coreclean.exceptions import InputValidationError
    from coreclean.scoring.ranker import LabelIssueRanker

    ranker = LabelIssueRanker("coreclean", n_folds=3, C=0.5, n_neighbors=7, random_state=4)
    copy = clone(ranker)
    assert copy is not ranker and copy.get_params() == ranker.get_params()
    assert copy.set_params(C=0.25).C == 0.25 and ranker.C == 0.5
    with pytest.raises(NotFittedError) as caught:
        ranker.errors_per_class()
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, AttributeError)
    features = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    labels = np.repeat([0, 1], 20)
    for bad in ({"n_folds": 1}, {"C": 0.0}, {"n_neighbors": 2.5}, {"temperature": -1.0}, {"method": "nope"}):
        with pytest.raises(InputValidationError, match=next(iter(bad))):
            LabelIssueRanker(**bad).fit(features, labels)


def test_classes_smaller_than_the_folds_get_a_clear_error():
    """#11.10: every class smaller than n_folds gave scikit-learn's raw ValueError."""
    import pytest

    from coreclean.exceptions import InputValidationError
    from coreclean.scoring.ranker import LabelIssueRanker

    features = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    with pytest.raises(InputValidationError, match="Pass n_folds=4 or fewer"):
        LabelIssueRanker().fit(features, np.repeat([0, 1, 2], 4))
    LabelIssueRanker(n_folds=4, n_neighbors=3).fit(features, np.repeat([0, 1, 2], 4))  # what the message says works


def test_memory_caches_the_label_blind_work_and_survives_a_damaged_entry(tmp_path):
    """#10: every session command refitted the PCA projection and the neighbour graph (~1.2 s of a 1.4 s fit)."""
    import warnings

    from coreclean.scoring.ranker import LabelIssueRanker

    features, labels = _blobs()
    plain = LabelIssueRanker(random_state=0).fit(features, labels)
    cached = LabelIssueRanker(random_state=0, memory=str(tmp_path)).fit(features, labels)
    np.testing.assert_array_equal(cached.scores_, plain.scores_)
    entries = list(tmp_path.rglob("output.pkl"))
    assert len(entries) == 2  # the projection's fit and the neighbour graph

    written = {entry: entry.stat().st_mtime_ns for entry in entries}
    again = LabelIssueRanker(random_state=0, memory=str(tmp_path)).fit(features, labels)
    np.testing.assert_array_equal(again.scores_, plain.scores_)
    assert {entry: entry.stat().st_mtime_ns for entry in tmp_path.rglob("output.pkl")} == written  # loaded, not redone

    for entry in entries:
        entry.write_bytes(b"damaged")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        repaired = LabelIssueRanker(random_state=0, memory=str(tmp_path)).fit(features, labels)
    np.testing.assert_array_equal(repaired.scores_, plain.scores_)
