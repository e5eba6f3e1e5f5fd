"""Bring your own predictions: out-of-sample ``pred_probs`` drive ``LabelIssueRanker``, ``rank`` and sessions."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from conftest import FEATURE_CLASS_NAMES, gaussian_blobs, make_feature_cache

import coreclean
from coreclean.cli import main
from coreclean.evaluation.ranking_metrics import ranking_auroc
from coreclean.exceptions import InputValidationError, SessionError
from coreclean.formats.cleanlab_arrays import read_pred_probs
from coreclean.scoring.confident_joint import true_label_posterior
from coreclean.scoring.noise_prior import estimate_noise_structure
from coreclean.scoring.ranker import LabelIssueRanker
from coreclean.scoring.signals import normalized_margin_score, self_confidence_score

pytestmark = pytest.mark.usefixtures("one_thread")


def noisy_model_probs(true: np.ndarray, n_classes: int, rng: np.random.Generator, *, strength: float = 2.5):
    """A plausible model's probabilities: softmax of noisy logits that favour the true class."""
    logits = rng.normal(size=(true.size, n_classes))
    logits[np.arange(true.size), true] += strength
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def planted(n: int = 400, n_classes: int = 4, n_errors: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_classes, n)
    noisy = true.copy()
    flipped = rng.choice(n, n_errors, replace=False)
    noisy[flipped] = (true[flipped] + rng.integers(1, n_classes, n_errors)) % n_classes
    return true, noisy, flipped, rng


# ---------------------------------------------------------------- the estimator
def test_alone_the_scores_are_the_signals_of_those_probabilities():
    true, noisy, _, rng = planted()
    probs = noisy_model_probs(true, 4, rng)
    for method, signal in (("self_confidence", self_confidence_score), ("normalized_margin", normalized_margin_score)):
        ranker = LabelIssueRanker(method).fit(None, noisy, pred_probs=probs)
        np.testing.assert_allclose(ranker.scores_, signal(probs, noisy))
    # the default: no neighbours to pool, so the noise prior and posterior are read from the probabilities as given
    ranker = LabelIssueRanker().fit(None, noisy, pred_probs=probs)
    joint = estimate_noise_structure(probs, noisy, sample_weight=np.ones(noisy.size)).joint
    expected = self_confidence_score(true_label_posterior(probs, noisy, joint), noisy)
    np.testing.assert_allclose(ranker.scores_, expected)
    np.testing.assert_allclose(ranker.probs_, probs, rtol=1e-6)
    assert ranker.n_classes_ == 4 and not ranker.small_class_.any()
    frame = ranker.to_frame()  # the signal columns are those of the given probabilities
    row = frame.set_index("id").loc[0]
    assert row["given_label_prob"] == pytest.approx(probs[0, noisy[0]])


def test_perfect_probabilities_rank_the_planted_errors_first_and_noisy_ones_score_high_auroc():
    true, noisy, flipped, rng = planted()
    perfect = np.eye(4)[true] * 0.96 + 0.01
    ranker = LabelIssueRanker().fit(None, noisy, pred_probs=perfect)
    assert set(ranker.ranking()[: flipped.size]) == set(flipped)
    assert (ranker.suggested_labels_[flipped] == true[flipped]).all()
    ranker = LabelIssueRanker().fit(None, noisy, pred_probs=noisy_model_probs(true, 4, rng))
    assert ranking_auroc(ranker.scores_, noisy != true) > 0.9


def test_beside_features_the_probabilities_replace_the_regressions_and_stay_fixed():
    rng = np.random.default_rng(1)
    features, true = gaussian_blobs(rng, 100, 6, 3, spread=0.35)  # classes barely separable: a weak built-in model
    noisy = true.copy()
    flipped = rng.choice(true.size, 30, replace=False)
    noisy[flipped] = (true[flipped] + 1) % 3
    probs = noisy_model_probs(true, 3, rng, strength=3.0)
    settings = {"n_neighbors": 8, "n_components": None, "random_state": 0}
    built_in = LabelIssueRanker(**settings).fit(features, noisy)
    own = LabelIssueRanker(**settings).fit(features, noisy, pred_probs=probs)
    assert "out_of_fold" not in own.signals_.__dict__  # no regression was fitted
    assert ranking_auroc(own.scores_, noisy != true) > ranking_auroc(built_in.scores_, noisy != true) + 0.1
    assert not np.allclose(own.probs_, probs, atol=1e-3)  # pooled with the neighbour vote
    # a review moves labels, trust and weights; the given probabilities stay as they were
    own.relabel(flipped[0], true[flipped[0]]).drop(flipped[1]).rescore()
    np.testing.assert_array_equal(own.signals_.model_probs, probs)
    assert own.labels_[flipped[0]] == true[flipped[0]] and flipped[1] not in own.ranking()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda p: p[:-1], "pred_probs must have shape (400, 4): one row per label, one column per class; got shape (399, 4)"),
    (lambda p: p[:, :3] / p[:, :3].sum(axis=1, keepdims=True), "must have shape (400, 4)"),
    (lambda p: np.where(np.arange(400)[:, None] == 7, np.nan, p), "1 row(s) with NaN or infinite values (first: row 7)"),
    (lambda p: np.where((np.arange(400)[:, None] == 3) & (np.arange(4) == 0), -0.1, p), "negative values (first: row 3)"),
    (lambda p: p * np.where(np.isin(np.arange(400), [5, 9, 11]), 1.01, 1.0)[:, None],
     "3 row(s) not summing to 1 within 0.001 (first: row 5, sum 1.01)"),
])
def test_each_bad_probability_array_gets_its_own_message(mutate, message):
    true, noisy, _, rng = planted()
    probs = noisy_model_probs(true, 4, rng)
    with pytest.raises(InputValidationError) as info:
        LabelIssueRanker().fit(None, noisy, n_classes=4, pred_probs=mutate(probs))
    assert message in str(info.value)


def test_within_tolerance_is_accepted_and_other_misuse_is_refused():
    true, noisy, _, rng = planted()
    probs = noisy_model_probs(true, 4, rng).astype(np.float32) * 1.0005  # float32 softmax, slightly off
    assert LabelIssueRanker().fit(None, noisy, pred_probs=probs).scores_.shape == (400,)
    with pytest.raises(InputValidationError, match="pass features, pred_probs, or both"):
        LabelIssueRanker().fit(None, noisy)
    with pytest.raises(InputValidationError, match="'knn_disagreement' needs features"):
        LabelIssueRanker("knn_disagreement").fit(None, noisy, pred_probs=probs)
    with pytest.raises(InputValidationError, match="label 3 is not a known class"):
        LabelIssueRanker().fit(None, noisy, pred_probs=probs[:, :3] / probs[:, :3].sum(axis=1, keepdims=True))


# ---------------------------------------------------------------- aligning a file to the data
def test_read_pred_probs_puts_rows_and_columns_in_the_data_order(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 6)
    ids = np.array([f"s{i}" for i in range(6)])
    order = rng.permutation(6)
    np.save(tmp_path / "p.npy", probs[order][:, [2, 0, 1]])
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in ids[order]) + "\n")
    aligned, names = read_pred_probs(tmp_path / "p.npy", sample_ids=ids, class_names=["a", "b", "c"],
                                     ids_path=tmp_path / "ids.txt", column_names=["c", "a", "b"])
    np.testing.assert_array_equal(aligned, probs)
    assert names == ["a", "b", "c"]
    # a column for a class no sample carries is kept (after the data's classes) where allowed
    np.save(tmp_path / "four.npy", np.hstack([probs[:, :1], np.zeros((6, 1)), probs[:, 1:]]))
    aligned, names = read_pred_probs(tmp_path / "four.npy", sample_ids=ids, class_names=["a", "b", "c"],
                                     column_names=["a", "z", "b", "c"], allow_extra_classes=True)
    assert names == ["a", "b", "c", "z"] and np.array_equal(aligned, np.hstack([probs, np.zeros((6, 1))]))


@pytest.mark.parametrize(("ids_text", "columns", "message"), [
    ("s0\ns1\ns2\ns3\ns4\n", None, "names 5 ids but"),
    ("s0\ns1\ns2\ns3\ns4\ns4\n", None, "names 1 id(s) more than once (first: 's4')"),
    ("s0\ns1\ns2\ns3\ns4\nx9\n", None, "1 id(s) of"),
    (None, ["a", "b"], "names 2 classes but"),
    (None, ["a", "b", "b"], "names 'b' more than once"),
    (None, ["a", "b", "z"], "class(es) 'c' of the data are not in --class-names"),
    (None, "no_names", "has 3 columns but the data has 2 classes"),
])
def test_read_pred_probs_errors(tmp_path, ids_text, columns, message):
    np.save(tmp_path / "p.npy", np.full((6, 3), 1 / 3))
    ids_path = None
    if ids_text is not None:
        ids_path = tmp_path / "ids.txt"
        ids_path.write_text(ids_text)
    class_names = ["a", "b"] if columns == "no_names" else ["a", "b", "c"]
    with pytest.raises(InputValidationError) as info:
        read_pred_probs(tmp_path / "p.npy", sample_ids=[f"s{i}" for i in range(6)], class_names=class_names,
                        ids_path=ids_path, column_names=None if columns == "no_names" else columns)
    assert message in str(info.value)


# ---------------------------------------------------------------- sessions
@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_feature_cache(tmp_path_factory.mktemp("pp"), n_per_class=60)


def test_session_keeps_the_probabilities_fixed_through_a_round_and_a_reopen(toy, tmp_path):
    cache, _, true, noisy = toy
    probs = noisy_model_probs(true, 3, np.random.default_rng(2), strength=4.0)
    path = tmp_path / "s.session"
    with coreclean.CleaningSession.start(cache, path, classes=["cat"], batch_size=8, evaluate=False,
                                         pred_probs=probs) as session:
        ranker = session.ranker()
        np.testing.assert_array_equal(ranker.pred_probs_, probs)
        batch = session.next_batch()
        errors = noisy[batch["index"]] != true[batch["index"]]
        assert errors.sum() >= 6  # the model's confident disagreements come first
        relabelled, dropped = batch["index"][errors].to_numpy()[:2]
        decisions = pd.DataFrame({"id": batch["id"], "action": "keep", "new_label": ""})
        decisions.loc[batch["index"] == relabelled, ["action", "new_label"]] = ["relabel",
                                                                                FEATURE_CLASS_NAMES[true[relabelled]]]
        decisions.loc[batch["index"] == dropped, "action"] = "drop"
        session.apply(decisions)
        session.close_round()
        ranker = session.ranker()
        np.testing.assert_array_equal(ranker.signals_.model_probs, probs)  # relabelled: same row as before
        assert ranker.labels_[relabelled] == true[relabelled] and ranker.sample_weight_[dropped] == 0
        assert dropped not in ranker.ranking()
        scores = ranker.scores_.copy()
    with coreclean.CleaningSession.open(path) as session:  # a new process: read back from the file
        ranker = session.ranker()
        np.testing.assert_array_equal(ranker.pred_probs_, probs)
        np.testing.assert_allclose(ranker.scores_, scores)


def test_session_refuses_probabilities_that_do_not_fit_the_cache(toy, tmp_path):
    cache, _, true, _ = toy
    with pytest.raises(SessionError, match="pred_probs must have shape"):
        coreclean.CleaningSession.start(cache, tmp_path / "s.session", classes=["cat"], evaluate=False,
                                        pred_probs=np.full((true.size, 4), 0.25))
    assert not (tmp_path / "s.session").exists()


# ---------------------------------------------------------------- the command line
def test_rank_cli_alone_with_ids_and_class_names_and_beside_a_cache(toy, tmp_path, capsys):
    cache, _, true, noisy = toy
    probs = noisy_model_probs(true, 3, np.random.default_rng(3), strength=4.0)
    sample_ids = [f"img/{i:04d}.png" for i in range(true.size)]
    pd.DataFrame({"id": sample_ids, "label": np.array(FEATURE_CLASS_NAMES)[noisy]}).to_csv(tmp_path / "l.csv",
                                                                                          index=False)
    order = np.random.default_rng(4).permutation(true.size)
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "shuffled.npy", probs[order][:, [1, 2, 0]])
    (tmp_path / "ids.txt").write_text("".join(f"{sample_ids[i]}\n" for i in order))
    base = ["-q", "rank", "--threads", "1"]
    assert main([*base, "--pred-probs", str(tmp_path / "p.npy"), "--labels", str(tmp_path / "l.csv"),
                 "--out", str(tmp_path / "a.csv")]) == 0
    assert "on " + str(tmp_path / "p.npy") in capsys.readouterr().out
    assert main([*base, "--pred-probs", str(tmp_path / "shuffled.npy"), "--labels", str(tmp_path / "l.csv"),
                 "--ids", str(tmp_path / "ids.txt"), "--class-names", "dog,fox,cat",
                 "--out", str(tmp_path / "b.csv")]) == 0
    first, second = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(first, second)
    library = LabelIssueRanker(random_state=0).fit(None, noisy, pred_probs=probs)
    np.testing.assert_allclose(first.set_index("id").loc[sample_ids, "score"], library.scores_)
    errors = set(np.array(sample_ids)[noisy != true])
    assert len(errors & set(first["id"].head(len(errors)))) >= 0.8 * len(errors)
    # beside the cache's features: the neighbour vote joins, the rows are the cache's samples
    assert main([*base, "--neighbors", "5", "--cache", str(cache), "--pred-probs", str(tmp_path / "shuffled.npy"),
                 "--ids", str(tmp_path / "ids.txt"), "--class-names", "dog,fox,cat",
                 "--out", str(tmp_path / "c.csv")]) == 0
    beside = pd.read_csv(tmp_path / "c.csv").set_index("id").loc[sample_ids]
    np.testing.assert_allclose(beside["given_label_prob"], probs[np.arange(true.size), noisy], rtol=1e-6)
    assert len(errors & set(pd.read_csv(tmp_path / "c.csv")["id"].head(len(errors)))) >= 0.8 * len(errors)


@pytest.mark.parametrize(("case", "message"), [
    ("sums", "row(s) not summing to 1"),
    ("ids_unknown", "are not samples of the data"),
    ("ids_without_probs", "describe --pred-probs"),
    ("method", "'class_leverage' needs features"),
    ("no_labels", "give --cache DIR"),
])
def test_rank_cli_errors_are_one_line(toy, tmp_path, capsys, case, message):
    _, _, true, noisy = toy
    probs = noisy_model_probs(true, 3, np.random.default_rng(0))
    np.save(tmp_path / "labels.npy", noisy)
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in range(true.size)))
    argv = ["--labels", str(tmp_path / "labels.npy"), "--pred-probs", str(tmp_path / "p.npy")]
    if case == "sums":
        probs[[4, 8]] *= 2
    elif case == "ids_unknown":
        (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in range(1, true.size + 1)))
        argv += ["--ids", str(tmp_path / "ids.txt")]
    elif case == "ids_without_probs":
        argv = ["--labels", str(tmp_path / "labels.npy"), "--ids", str(tmp_path / "ids.txt")]
    elif case == "method":
        argv += ["--method", "class_leverage"]
    elif case == "no_labels":
        argv = ["--pred-probs", str(tmp_path / "p.npy")]
    np.save(tmp_path / "p.npy", probs)
    assert main(["-q", "rank", "--out", str(tmp_path / "r.csv"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_session_cli_start_with_pred_probs_and_one_round(toy, tmp_path, capsys):
    cache, _, true, noisy = toy
    probs = noisy_model_probs(true, 3, np.random.default_rng(5), strength=4.0)
    sample_ids = np.array([f"img/{i:04d}.png" for i in range(true.size)])
    order = np.random.default_rng(6).permutation(true.size)
    np.save(tmp_path / "p.npy", probs[order])
    (tmp_path / "ids.txt").write_text("".join(f"{s}\n" for s in sample_ids[order]))
    session = tmp_path / "s.session"
    common = ["--session", str(session), "--threads", "1"]
    assert main(["session", "start", "--cache", str(cache), "--class", "dog", "--per-class", "6", "--no-evaluate",
                 "--pred-probs", str(tmp_path / "p.npy"), "--ids", str(tmp_path / "ids.txt"), *common]) == 0
    assert main(["session", "next", *common, "--out", str(tmp_path / "review"), "--no-sheet"]) == 0
    capsys.readouterr()
    sheet = pd.read_csv(tmp_path / "review" / "round-1.csv", dtype=str, keep_default_na=False)
    index = {s: i for i, s in enumerate(sample_ids)}
    truth = [FEATURE_CLASS_NAMES[true[index[s]]] for s in sheet["id"]]
    wrong = sheet["label"] != pd.Series(truth)
    assert wrong.sum() >= 4
    sheet["action"] = ["relabel" if w else "keep" for w in wrong]
    sheet["new_label"] = [t if w else "" for t, w in zip(truth, wrong)]
    sheet.to_csv(tmp_path / "decisions.csv", index=False)
    assert main(["session", "apply", *common, str(tmp_path / "decisions.csv")]) == 0
    assert "round 1 closed" in capsys.readouterr().out
    with coreclean.CleaningSession.open(session) as opened:
        np.testing.assert_array_equal(opened.ranker().pred_probs_, probs)  # the rows, back in the cache's order
    assert main(["session", "start", "--cache", str(cache), "--class", "dog", "--session", str(tmp_path / "t.session"),
                 "--pred-probs", str(tmp_path / "p.npy")]) == 0  # rows taken in cache order: accepted, but
    with coreclean.CleaningSession.open(tmp_path / "t.session") as other:  # ... they are the shuffled ones
        assert not np.array_equal(other.ranker().pred_probs_, probs)
    capsys.readouterr()
    assert main(["session", "start", "--cache", str(cache), "--class", "dog", "--session", str(tmp_path / "u.session"),
                 "--pred-probs", str(tmp_path / "p.npy"), "--class-names", "cat,dog,wolf"]) == 2
    assert "'fox' of the data are not in --class-names" in capsys.readouterr().err


def test_store_round_trips_pred_probs_and_reads_none_from_a_file_without_them(tmp_path):
    from coreclean.sessions.store import SessionStore

    probs = np.random.default_rng(0).dirichlet(np.ones(3), 4)
    with_probs, without = SessionStore(tmp_path / "a.session", create=True), SessionStore(":memory:")
    with_probs.initialize({"k": 1}, ["a", "b", "c", "d"], np.zeros(4, int), np.ones(4), probs)
    without.initialize({"k": 1}, ["a", "b", "c", "d"], np.zeros(4, int), np.ones(4))
    np.testing.assert_array_equal(with_probs.pred_probs(), probs)
    assert without.pred_probs() is None
    without._conn.execute("DROP TABLE pred_probs")  # a file written before the table existed
    assert without.pred_probs() is None
    with_probs.close()
    without.close()
