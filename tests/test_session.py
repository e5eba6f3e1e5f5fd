"""CleaningSession end to end on a tiny synthetic cache with planted label errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import FEATURE_CLASS_NAMES, make_feature_cache

import coreclean
from coreclean.exceptions import DecisionError, SessionError
from coreclean.sessions.export import apply_label_patch
from coreclean.simulate.reviewer import SimulatedReviewer, run_simulation

pytestmark = pytest.mark.usefixtures("one_thread")

CLASS_NAMES = FEATURE_CLASS_NAMES


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_feature_cache(tmp_path_factory.mktemp("toy"))


def start(toy, path, **kwargs):
    cache = toy[0]
    options = {"classes": ["cat", "dog"], "batch_size": 15, "n_boot": 50}
    options.update(kwargs)
    return coreclean.CleaningSession.start(cache, path, **options)


def test_whole_session_beats_random_and_export_reapplies(toy, tmp_path):
    cache, manifest, true, noisy = toy
    found = {}
    for method in ("coreclean", "random"):
        with start(toy, tmp_path / f"{method}.session", method=method) as session:
            reviewer = SimulatedReviewer(session.sample_ids, true, session.class_names)
            rounds = run_simulation(session, reviewer, 3, evaluate=method == "coreclean")
            found[method] = rounds["errors_found_total"].to_numpy()
            if method == "coreclean":
                assert rounds["round"].tolist() == [0, 1, 2, 3]
                assert rounds.loc[1:, "n_reviewed"].eq(30).all()
                assert np.isfinite(rounds["auroc"]).all()
                assert rounds.loc[1, "change_low"] <= rounds.loc[1, "auroc_change"] <= rounds.loc[1, "change_high"]
                assert rounds["verdict"].str.len().gt(0).all()
                out = session.export(tmp_path / "export")
                labels = session.labels
    # errors found per round beat random in every round
    assert (found["coreclean"][1:] > found["random"][1:]).all(), found
    assert found["coreclean"][1] >= 20
    # the exported patch, applied to the original manifest, gives the session's cleaned labels
    cleaned = apply_label_patch(manifest, out["patch"])
    assert cleaned["label"].tolist() == [CLASS_NAMES[k] for k in labels]
    patch = pd.read_csv(out["patch"])
    assert (patch["old_label"] != patch["new_label"]).all()
    assert len(patch) == found["coreclean"][-1]
    table = pd.read_csv(out["labels"])
    assert table["changed"].sum() == len(patch)


def test_next_batch_is_idempotent_and_per_class(toy, tmp_path):
    with start(toy, tmp_path / "s.session", evaluate=False, allocation="fixed") as session:
        first = session.next_batch()
        assert len(first) == 30 and set(first["class"]) == {"cat", "dog"}
        assert (first.groupby("class").size() == 15).all()
        assert list(first.columns[:4]) == ["round", "position", "index", "id"]
        assert first["position"].tolist() == list(range(30))
        session.decide(first["id"][0], "relabel", new_label="fox", reviewer="ann")
        again = session.next_batch()
        assert again["id"].tolist() == first["id"].tolist()
        assert again.loc[0, "action"] == "relabel" and again.loc[0, "new_label"] == "fox"
        # scores descend within each class
        for _, group in first.groupby("class"):
            assert np.all(np.diff(group["score"].to_numpy()) <= 1e-12)
        typical = session.typical("cat", n=4)
        assert len(typical) == 4 and (typical["label"] == "cat").all()
        assert typical["score"].max() <= first.loc[first["class"] == "cat", "score"].min()


def test_decisions_all_or_nothing(toy, tmp_path):
    with start(toy, tmp_path / "s.session", evaluate=False) as session:
        batch = session.next_batch()
        ids = batch["id"].tolist()
        bad_frames = {
            "unknown sample id": pd.DataFrame({"id": [ids[0], "nope.png"], "action": ["keep", "keep"]}),
            "unknown label": pd.DataFrame({"id": [ids[0], ids[1]], "action": ["keep", "relabel"],
                                           "new_label": ["", "wolf"]}),
            "duplicate decision": pd.DataFrame({"id": [ids[0], ids[0]], "action": ["keep", "keep"]}),
            "conflicting decision": pd.DataFrame({"id": [ids[0], ids[0]], "action": ["keep", "drop"]}),
            "unknown action": pd.DataFrame({"id": [ids[0]], "action": ["burn"]}),
            "needs a new_label": pd.DataFrame({"id": [ids[0]], "action": ["relabel"]}),
            "conflicts with new_label": pd.DataFrame({"id": [ids[0]], "action": ["keep"], "new_label": ["dog"]}),
        }
        for message, frame in bad_frames.items():
            with pytest.raises(DecisionError, match=message):
                session.apply(frame)
        csv = tmp_path / "bad.csv"
        pd.DataFrame({"id": [ids[2], "ghost"], "action": ["drop", "keep"]}).to_csv(csv, index=False)
        with pytest.raises(DecisionError, match="nothing was applied"):
            session.apply(csv)
        assert session.decisions().empty
        # blank actions are "not decided yet"; the rest is applied in one go
        good = batch[["id", "path", "label", "suggested_label", "suggested_prob", "score"]].copy()
        good["action"] = ""
        good["new_label"] = ""
        good.loc[0, "action"] = "drop"
        good.loc[1, "action"], good.loc[1, "weight"] = "downweight", "0.25"
        good.loc[2, "action"] = "skip"
        assert session.apply(good, reviewer="bob") == 3
        weights = session.weights
        assert weights[batch.loc[0, "index"]] == 0.0 and weights[batch.loc[1, "index"]] == 0.25
        result = session.close_round()
        assert (result.n_reviewed, result.n_errors_found, result.n_skipped) == (2, 2, 1)
        assert np.isnan(result.auroc)
        # decided in a closed round: refused
        with pytest.raises(DecisionError, match="earlier round"):
            session.decide(batch.loc[0, "id"], "keep")


def test_undo_appends_and_reopens(toy, tmp_path):
    with start(toy, tmp_path / "s.session", evaluate=False) as session:
        batch = session.next_batch()
        session.decide(batch["id"][0], "relabel", new_label="fox")
        session.decide(batch["id"][1], "keep")
        revoked = session.undo()
        assert revoked["id"].tolist() == [batch["id"][1]]
        session.decide(batch["id"][1], "drop")
        session.close_round()
        assert session.round == 2
        with pytest.raises(SessionError, match="no decision to undo"):
            session.undo("decision")
        labels_before = session.labels.copy()
        revoked = session.undo("round")
        assert sorted(revoked["id"]) == sorted(batch["id"][:2])
        assert session.round == 1
        assert session.labels[batch["index"][0]] == session._start_labels[batch["index"][0]]
        assert labels_before[batch["index"][0]] == CLASS_NAMES.index("fox")
        assert session.next_batch()["id"].tolist() == batch["id"].tolist()
        log = session.decisions()
        assert (log["action"] == "undo").sum() == 3 and log["revoked"].sum() == 3  # nothing deleted
        assert len(session.rounds()) == 1  # only the baseline stands
        with pytest.raises(SessionError, match="nothing to undo"):
            session.undo("round")


def test_against_ranks_by_partner_probability(toy, tmp_path):
    with start(toy, tmp_path / "s.session", classes=["cat"], against="dog", evaluate=False) as session:
        batch = session.next_batch()
        assert (batch["class"] == "cat").all() and len(batch) == 15
        ranker = session._model._ranker
        dog = session.class_names.index("dog")
        assert np.allclose(batch["score"], ranker.probs_[batch["index"], dog])
        status = session.status()
        assert status["against"] == "dog" and status["batch_shown"] == 15


def test_bad_starts(toy, tmp_path):
    cache = toy[0]
    with pytest.raises(SessionError, match="no class 'cow'"):
        coreclean.CleaningSession.start(cache, tmp_path / "a.session", classes=["cow"])
    with pytest.raises(SessionError, match="Did you mean 'cat'"):
        coreclean.CleaningSession.start(cache, tmp_path / "a.session", classes=["cats"])
    with pytest.raises(SessionError, match="have no samples"):
        labels = np.zeros(450, dtype=np.int64)
        labels[:10] = 1
        coreclean.CleaningSession.start(cache, tmp_path / "b.session", classes=["fox"], labels=labels)
    with start(toy, tmp_path / "c.session", evaluate=False):
        pass
    with pytest.raises(SessionError, match="already exists"):
        start(toy, tmp_path / "c.session")
    with pytest.raises(SessionError, match="no session file"):
        coreclean.CleaningSession.open(tmp_path / "missing.session")
    (tmp_path / "junk.session").write_text("not sqlite")
    with pytest.raises(SessionError, match="junk.session"):
        coreclean.CleaningSession.open(tmp_path / "junk.session")


def test_session_refuses_another_cache(toy, tmp_path):
    other_cache = make_feature_cache(tmp_path / "other", seed=1, name="toy")[0]
    with start(toy, tmp_path / "s.session", evaluate=False):
        pass
    with pytest.raises(SessionError, match="fingerprint|does not hold"):
        coreclean.CleaningSession.open(tmp_path / "s.session", cache_dir=other_cache)


def test_two_sessions_on_one_cache(toy, tmp_path):
    first = start(toy, tmp_path / "one.session", evaluate=False)
    second = start(toy, tmp_path / "two.session", classes=["fox"], evaluate=False)
    with first, second:
        a, b = first.next_batch(), second.next_batch()
        first.decide(a["id"][0], "relabel", new_label="fox")
        second.decide(b["id"][0], "keep")
        assert len(first.decisions()) == 1 and len(second.decisions()) == 1
        assert first.decisions()["id"][0] == a["id"][0]
    # the same file opened twice: both see each other's committed decisions
    one, two = (coreclean.CleaningSession.open(tmp_path / "one.session") for _ in range(2))
    with one, two:
        one.decide(a["id"][1], "keep")
        assert len(two.decisions()) == 2


def test_full_disk_and_read_only_leave_the_database_intact(toy, tmp_path):
    path = tmp_path / "s.session"
    with start(toy, path, evaluate=False) as session:
        batch = session.next_batch()
        session.decide(batch["id"][0], "keep")
        conn = session._store._conn
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={page_count}")  # the disk is full from now on
        many = pd.DataFrame({"id": batch["id"][1:], "action": "keep", "reviewer": "x" * 5000})
        with pytest.raises(SessionError, match="rolled back"):
            session.apply(many)
        assert len(session.decisions()) == 1
    with coreclean.CleaningSession.open(path, read_only=True) as session:
        with pytest.raises(SessionError, match="read-only"):
            session.decide(batch["id"][1], "keep")
        with pytest.raises(SessionError, match="read-only"):
            session.close_round()
        assert len(session.decisions()) == 1 and session.status()["pending_decisions"] == 1
    with coreclean.CleaningSession.open(path) as session:
        assert session.decisions()["id"].tolist() == [batch["id"][0]]


def test_killed_mid_round_resumes_with_every_decision(toy, tmp_path):
    path = tmp_path / "s.session"
    with start(toy, path, evaluate=False) as session:
        batch = session.next_batch()
    script = textwrap.dedent(f"""
        import sys, time
        from coreclean.sessions.session import CleaningSession
        session = CleaningSession.open({str(path)!r})
        batch = session.next_batch()
        for k, sample_id in enumerate(batch["id"]):
            session.decide(sample_id, "keep" if k % 2 else "drop", reviewer="proc")
            print(k, flush=True)
            if k == 6:
                time.sleep(60)  # killed here, mid-round
        """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.strip() == "6":
                break
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    with coreclean.CleaningSession.open(path) as session:
        log = session.decisions()
        assert log["id"].tolist() == batch["id"][:7].tolist()
        assert log["action"].tolist() == ["drop", "keep"] * 3 + ["drop"]
        assert session.next_batch()["id"].tolist() == batch["id"].tolist()
        session.decide(batch["id"][7], "keep")
        result = session.close_round()
        assert result.n_reviewed == 8 and result.n_errors_found == 4


def test_reopened_session_continues(toy, tmp_path):
    cache, _, true, _ = toy
    path = tmp_path / "s.session"
    with start(toy, path, n_threads=1) as session:
        reviewer = SimulatedReviewer(session.sample_ids, true, session.class_names)
        run_simulation(session, reviewer, 1)
    with coreclean.CleaningSession.open(path, cache_dir=cache) as session:
        assert session.round == 2
        seen = set(session.decisions()["id"])
        batch = session.next_batch()
        assert not seen & set(batch["id"])
        session.apply(reviewer.review(batch))
        result = session.close_round()
        assert result.auroc_change is not None  # paired against round 1's stored evaluation
        rounds = session.rounds()
        assert rounds["round"].tolist() == [0, 1, 2]
        assert isinstance(result.verdict.summary, str) and "random review" in result.verdict.summary


def test_in_memory_session_for_simulations(toy):
    """The benchmark path: noisy labels given directly, no file, no evaluation (regression: ':memory:' was refused)."""
    cache, _, true, noisy = toy
    with coreclean.CleaningSession.start(cache, ":memory:", classes=CLASS_NAMES, batch_size=10, labels=noisy,
                                         evaluate=False) as session:
        reviewer = SimulatedReviewer(session.sample_ids, true, session.class_names)
        rounds = run_simulation(session, reviewer, 1)
        assert rounds["n_reviewed"].tolist() == [0, 30] and rounds["n_errors_found"].iloc[1] >= 20


def test_a_reopened_session_ranks_as_the_process_that_closed_the_round(toy, tmp_path):
    """#10: a new process fitted on the replayed labels, losing each relabelled sample's given label, so
    confirmed corrections no longer fed the noise structure and every CLI command ranked differently."""
    cache, _, true, _ = toy
    path = tmp_path / "s.session"
    with start(toy, path, n_threads=1) as session:
        reviewer = SimulatedReviewer(session.sample_ids, true, session.class_names)
        run_simulation(session, reviewer, 2)
        assert (session.decisions()["action"] == "relabel").any()
        scores = session.ranker().scores_.copy()
    with coreclean.CleaningSession.open(path, cache_dir=cache, n_threads=1) as session:
        np.testing.assert_allclose(session.ranker().scores_, scores, atol=2e-3)  # warm-start tolerance
