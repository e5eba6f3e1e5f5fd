"""The session as a user lives it: no lost or wasted work, CLI messages that name CLI flags, no stale results.

Each test here failed on the code before issue #10/#11's fixes (the finding it covers is named).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import make_feature_cache as make_cache

import coreclean
from coreclean.cli import main
from coreclean.exceptions import DecisionError, SessionError
from coreclean.sessions.store import SessionStore

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_cache(tmp_path_factory.mktemp("lived"), n_per_class=80)


def _start_cli(toy, tmp_path, *extra):
    session = tmp_path / "s.session"
    common = ["--session", str(session), "--threads", "1"]
    assert main(["session", "start", "--cache", str(toy[0]), "--class", "cat", "--per-class", "10", "--no-evaluate",
                 *common, *extra]) == 0
    return session, common


def _truth_sheet(toy, sheet):
    true = toy[2]
    index = {f"img/{i:04d}.png": i for i in range(true.size)}
    truth = [["cat", "dog", "fox"][true[index[i]]] for i in sheet["id"]]
    wrong = sheet["label"] != pd.Series(truth)
    sheet["action"] = ["relabel" if w else "keep" for w in wrong]
    sheet["new_label"] = [t if w else "" for t, w in zip(truth, wrong)]
    return sheet


def test_next_keeps_a_half_filled_batch_file(toy, tmp_path, capsys):
    """#10: re-running `session next` rewrote a half-filled batch CSV with its actions cleared."""
    session, common = _start_cli(toy, tmp_path)
    assert main(["session", "next", *common, "--out", str(tmp_path)]) == 0
    sheet = pd.read_csv(tmp_path / "round-1.csv", dtype=str, keep_default_na=False)
    sheet.loc[:3, "action"] = "keep"
    sheet.to_csv(tmp_path / "round-1.csv", index=False)
    capsys.readouterr()
    assert main(["session", "next", *common, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    again = pd.read_csv(tmp_path / "round-1.csv", dtype=str, keep_default_na=False)
    assert (again["action"][:4] == "keep").all()
    # What is printed last says the file was kept (a 50-row table used to scroll that line away, ending on
    # "-> round-1.csv"), and the table shows the file's decisions, not blank actions.
    lines = out.splitlines()
    kept_line = next(i for i, line in enumerate(lines) if "kept as it is" in line)
    assert "already holds 4 decision(s)" in lines[kept_line]
    table_rows = [line for line in lines[:kept_line] if line.split()[1:2] and line.split()[1] in set(sheet["id"])]
    assert sum(line.split()[-1] == "keep" for line in table_rows) == 4
    assert not any("->" in line and "round-1.csv" in line for line in lines[kept_line:])


def test_next_into_a_closed_pipe_writes_its_files_and_exits_without_a_traceback(toy, tmp_path):
    """`coreclean session next | head` ended in a BrokenPipeError traceback, before the contact sheet was written."""
    session, common = _start_cli(toy, tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is printed
    try:
        done = subprocess.run([sys.executable, "-m", "coreclean", "session", "next", *common, "--out", str(tmp_path)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and "Traceback" not in done.stderr, done.stderr
    assert (tmp_path / "round-1.csv").is_file() and (tmp_path / "round-1.png").is_file()


def test_applying_an_unfilled_file_does_nothing_and_says_so(toy, tmp_path, capsys):
    """#10: `apply` on the unfilled CSV closed the round ("0 error(s) in 0 reviewed") and re-scored."""
    session, common = _start_cli(toy, tmp_path)
    assert main(["session", "next", *common, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["session", "apply", *common, str(tmp_path / "round-1.csv")]) == 1
    assert "nothing was applied" in capsys.readouterr().out
    with coreclean.CleaningSession.open(session) as opened:
        assert opened.round == 1 and len(opened.rounds()) == 1
        with pytest.raises(DecisionError, match="no decision yet"):
            opened.close_round()


def test_reapplying_after_a_crash_is_idempotent(toy, tmp_path, capsys):
    """#10: after a kill between recording and closing, re-applying the same CSV was refused."""
    session, common = _start_cli(toy, tmp_path)
    assert main(["session", "next", *common, "--out", str(tmp_path)]) == 0
    sheet = _truth_sheet(toy, pd.read_csv(tmp_path / "round-1.csv", dtype=str, keep_default_na=False))
    sheet.to_csv(tmp_path / "round-1.csv", index=False)
    assert main(["session", "apply", *common, str(tmp_path / "round-1.csv"), "--no-close"]) == 0  # "the crash"
    capsys.readouterr()
    assert main(["session", "apply", *common, str(tmp_path / "round-1.csv")]) == 0
    out = capsys.readouterr().out
    assert "recorded 0 new decision(s)" in out and "round 1 closed" in out
    with coreclean.CleaningSession.open(session) as opened:
        assert len(opened.live_decisions()) == 10


def test_apply_refuses_ids_outside_the_batch(toy, tmp_path):
    """#11.5: `session apply` accepted ids outside the current batch and counted them in the hit rate."""
    with coreclean.CleaningSession.start(toy[0], tmp_path / "s.session", classes=["cat"], batch_size=5,
                                         evaluate=False) as session:
        batch = session.next_batch()
        outside = next(str(s) for s in session.sample_ids if s not in set(batch["id"]))
        with pytest.raises(DecisionError, match="not in round 1's batch"):
            session.apply(pd.DataFrame({"id": [batch["id"][0], outside], "action": ["keep", "drop"]}))
        assert session.live_decisions().empty


def test_revise_changes_one_decision_and_recomputes_the_round(toy, tmp_path, capsys):
    """#10: no way to revise one decision of a closed round; undo pointed at the Python API."""
    session, common = _start_cli(toy, tmp_path)
    assert main(["session", "next", *common, "--out", str(tmp_path)]) == 0
    sheet = pd.read_csv(tmp_path / "round-1.csv", dtype=str, keep_default_na=False)
    sheet["action"] = "keep"
    sheet.to_csv(tmp_path / "round-1.csv", index=False)
    assert main(["session", "apply", *common, str(tmp_path / "round-1.csv")]) == 0
    capsys.readouterr()
    target = sheet["id"][3]
    assert main(["session", "revise", *common, target, "relabel", "--new-label", "fox"]) == 0
    assert "round 1 closed: 1 error(s) in 10 reviewed" in capsys.readouterr().out
    with coreclean.CleaningSession.open(session) as opened:
        rounds = opened.rounds()
        assert rounds["n_errors_found"].tolist() == [0, 1] and rounds["n_reviewed"].dtype.kind == "i"
        assert opened.labels[opened.sample_ids.tolist().index(target)] == 2
        log = opened.decisions()
        assert log["revoked"].sum() == 1 and (log["action"] == "undo").sum() == 1  # audited, nothing deleted
    with pytest.raises(SystemExit):  # argparse refuses an unknown action before anything is opened
        main(["session", "revise", *common, sheet["id"][0], "burn"])


def test_counts_stay_integers_after_undo_round(toy, tmp_path):
    """#10: after `undo --round` counts showed as floats ("20.0")."""
    with coreclean.CleaningSession.start(toy[0], tmp_path / "s.session", classes=["cat"], batch_size=5,
                                         evaluate=False) as session:
        for _ in range(2):
            for sid in session.next_batch()["id"]:
                session.decide(sid, "keep")
            session.close_round()
        session.undo("round")
        rounds = session.rounds()
        assert rounds["n_reviewed"].tolist() == [0, 5] and rounds["n_reviewed"].dtype.kind == "i"


def test_a_second_process_closing_a_round_makes_the_first_refit(toy, tmp_path):
    """#11.3: a running review server kept its ranker; after the CLI closed a round it drew from the stale model."""
    path = tmp_path / "s.session"
    with coreclean.CleaningSession.start(toy[0], path, classes=["cat"], batch_size=8, evaluate=False) as server:
        server.next_batch()  # the server's model, fitted now
        with coreclean.CleaningSession.open(path) as cli:
            batch = cli.next_batch()
            truth = _truth_sheet(toy, batch[["id", "label"]].copy())
            cli.apply(truth)
            cli.close_round()
        with coreclean.CleaningSession.open(path) as fresh:
            expected = fresh.next_batch()
        drawn = server.next_batch()  # the batch is stored by `fresh`: same rows whoever draws it
        assert drawn["id"].tolist() == expected["id"].tolist()
        ranker = server._model.ranker(server._store, server.live_decisions())
        assert np.allclose(ranker.scores_[drawn["index"]], expected["score"], atol=1e-6)


def _drawn_afresh(path, copy):
    """The batch a process with no batch drawn ahead would show: on a copy of the closed file, without it."""
    shutil.copy(path, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("DELETE FROM prepared_batches")
    with coreclean.CleaningSession.open(copy) as fresh:
        return fresh.next_batch()


def test_next_in_a_new_process_shows_the_batch_drawn_when_the_round_closed_without_refitting(toy, tmp_path,
                                                                                              monkeypatch):
    """#10: each `session next` after an apply refitted the ranker: 3.7 s of a 3,000-image round, 0.9 s without."""
    from coreclean.scoring.ranker import LabelIssueRanker

    path = tmp_path / "s.session"
    with coreclean.CleaningSession.start(toy[0], path, classes=["cat"], batch_size=8, evaluate=False) as session:
        session.apply(_truth_sheet(toy, session.next_batch()[["id", "label"]].copy()))
        session.close_round()
    expected = _drawn_afresh(path, tmp_path / "copy.session")

    def no_refit(*args, **kwargs):
        raise AssertionError("the ranker was refitted to draw a batch drawn already")

    monkeypatch.setattr(LabelIssueRanker, "fit", no_refit)
    with coreclean.CleaningSession.open(path) as cli:
        drawn = cli.next_batch()
    assert drawn["id"].tolist() == expected["id"].tolist() and len(drawn) == 8
    assert np.allclose(drawn["score"], expected["score"]) and np.allclose(drawn["suggested_prob"],
                                                                          expected["suggested_prob"])


def test_revising_a_closed_round_redraws_the_batch_drawn_ahead(toy, tmp_path):
    path = tmp_path / "s.session"
    with coreclean.CleaningSession.start(toy[0], path, classes=["cat"], batch_size=8, evaluate=False) as session:
        batch = session.next_batch()
        for sid in batch["id"]:
            session.decide(sid, "keep")
        session.close_round()
        before = session._store.prepared_batch(2)
        session.revise(batch["id"][0], "relabel", new_label="fox")
        assert session._store.prepared_batch(2) is not None and session._store.prepared_batch(2) != before
    expected = _drawn_afresh(path, tmp_path / "copy.session")
    with coreclean.CleaningSession.open(path) as reopened:
        assert reopened.next_batch()["id"].tolist() == expected["id"].tolist()


def test_a_decision_arriving_while_a_round_closes_is_counted(toy, tmp_path, monkeypatch):
    """#11.6: a page decision made while the CLI closed a round left the stored numbers out of step."""
    from coreclean.sessions import model as model_module

    path = tmp_path / "s.session"
    with coreclean.CleaningSession.start(toy[0], path, classes=["cat"], batch_size=6, evaluate=False) as session:
        batch = session.next_batch()
        for sid in batch["id"][:5]:
            session.decide(sid, "keep")
        late = str(batch["id"][5])
        original = model_module.SessionModel.measure_round
        calls = []

        def measure_then_page_decides(self, store, round_number, *, evaluate):
            result = original(self, store, round_number, evaluate=evaluate)
            if not calls:
                calls.append(1)
                with coreclean.CleaningSession.open(path) as page:
                    page.decide(late, "drop")
            return result

        monkeypatch.setattr(model_module.SessionModel, "measure_round", measure_then_page_decides)
        result = session.close_round()
        assert (result.n_reviewed, result.n_errors_found) == (6, 1)
        stored = session.rounds().iloc[-1]
        assert (stored["n_reviewed"], stored["n_errors_found"]) == (6, 1)


def test_foreign_sqlite_files_are_refused_untouched(tmp_path):
    """#11.15: a foreign SQLite file was switched to WAL (and a 0-byte file became a database) before refusal."""
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    with pytest.raises(SessionError, match="not a coreclean session"):
        SessionStore(foreign)
    assert foreign.read_bytes() == before and not (tmp_path / "other.db-wal").exists()
    empty = tmp_path / "empty.session"
    empty.touch()
    with pytest.raises(SessionError, match="not a coreclean session"):
        SessionStore(empty)
    assert empty.stat().st_size == 0


def test_copying_a_closed_session_without_its_wal_keeps_every_decision(toy, tmp_path):
    """#11.17: copying a session file without its -wal lost committed decisions."""
    path = tmp_path / "s.session"
    with coreclean.CleaningSession.start(toy[0], path, classes=["cat"], batch_size=5, evaluate=False) as session:
        for sid in session.next_batch()["id"]:
            session.decide(sid, "keep")
    copy = tmp_path / "copy" / "s.session"
    copy.parent.mkdir()
    shutil.copy(path, copy)  # the file alone
    with coreclean.CleaningSession.open(copy, cache_dir=toy[0], read_only=True) as copied:
        assert len(copied.live_decisions()) == 5


def test_budget_across_classes_follows_the_errors_left(toy, tmp_path):
    """#10: a fixed quota per class wasted reviews on a class with few errors left."""
    labels = toy[3].copy()
    cat = 0
    clean = np.flatnonzero(labels == cat)
    labels[clean] = toy[2][clean]  # cat: its own errors fixed, so cat has far fewer errors than dog
    with coreclean.CleaningSession.start(toy[0], tmp_path / "s.session", classes=["cat", "dog"], batch_size=10,
                                         evaluate=False, labels=labels) as session:
        by_class = session.status()["errors_left_by_class"]
        assert by_class["dog"] > by_class["cat"]
        shown = session.next_batch().groupby("class").size()
        assert shown.sum() == 20 and shown["dog"] > shown["cat"] >= 2  # the floor keeps cat in view
    with coreclean.CleaningSession.start(toy[0], tmp_path / "f.session", classes=["cat", "dog"], batch_size=10,
                                         evaluate=False, labels=labels, allocation="fixed") as session:
        assert session.next_batch().groupby("class").size().tolist() == [10, 10]


def test_classes_rank_and_session_give_the_same_error_counts(toy, tmp_path):
    """#10: `classes` and `rank` gave different error counts for the same class (cat 101 vs 77), the session a third."""
    from coreclean.diagnostics.class_report import class_report_from_cache
    from coreclean.embedding.cache import load_embeddings
    from coreclean.scoring.ranker import LabelIssueRanker

    report = class_report_from_cache(toy[0]).set_index("class")["estimated_errors"]
    embeddings = load_embeddings(toy[0])
    ranked = LabelIssueRanker(random_state=0).fit(embeddings.features, embeddings.labels).errors_per_class()
    with coreclean.CleaningSession.start(toy[0], tmp_path / "s.session", classes=["cat", "dog"],
                                         evaluate=False) as session:
        started = session.status()["errors_left_by_class"]
    for k, name in enumerate(embeddings.class_names):
        assert report[name] == pytest.approx(ranked[k], rel=1e-6)
        if name in started:
            assert started[name] == pytest.approx(ranked[k], rel=1e-6)


def test_export_tree_from_the_cli_gives_a_folder_to_train_on(tmp_path, capsys):
    """#10: export wrote CSVs only; moving files by hand changed every id."""
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", class_names=("ant", "bee"), per_class=12)
    (data / "bee" / "broken.jpg").write_bytes(b"not an image")  # embed skips it; export must say it is not there
    cache = tmp_path / "cache"
    assert main(["-q", "embed", str(data), "--cache", str(cache), "--backbone", "pixels", "--image-size", "8"]) == 0
    session = tmp_path / "s.session"
    common = ["--session", str(session), "--threads", "1"]
    assert main(["session", "start", "--cache", str(cache), "--class", "ant", "--per-class", "4", "--no-evaluate",
                 *common]) == 0
    assert main(["session", "next", *common, "--out", str(tmp_path / "review"), "--no-sheet"]) == 0
    sheet = pd.read_csv(tmp_path / "review" / "round-1.csv", dtype=str, keep_default_na=False)
    sheet["action"] = ["relabel", "drop", "keep", "keep"]
    sheet["new_label"] = ["bee", "", "", ""]
    sheet.to_csv(tmp_path / "review" / "round-1.csv", index=False)
    assert main(["session", "apply", *common, str(tmp_path / "review" / "round-1.csv")]) == 0
    capsys.readouterr()
    assert main(["session", "export", *common, "--format", "tree", "--out", str(tmp_path / "tree")]) == 0
    assert "not in the tree: 1 file(s) `coreclean embed` could not read" in capsys.readouterr().out
    manifest = pd.read_csv(tmp_path / "tree" / "manifest.csv").set_index("id")
    moved, dropped = sheet["id"][0], sheet["id"][1]
    assert manifest.loc[moved, "label"] == "bee" and manifest.loc[moved, "path"].startswith("bee/")
    assert dropped not in manifest.index and len(manifest) == 23
    assert (tmp_path / "tree" / manifest.loc[moved, "path"]).read_bytes() == (data / moved).read_bytes()


def test_random_reviews_rate_is_the_rounds_own_and_the_plot_draws_that_number(toy, tmp_path, monkeypatch):
    """The verdict compared round 1's hit rate with the ranker's count from before any review (twice the truth on a
    confusable class), and the plot drew each round's comparison one round late."""
    from coreclean.diagnostics import plots
    from coreclean.simulate.reviewer import SimulatedReviewer, run_simulation

    with coreclean.CleaningSession.start(toy[0], tmp_path / "s.session", classes=["cat", "dog"], batch_size=10,
                                         evaluate=False) as session:
        reviewer = SimulatedReviewer(session.sample_ids, toy[2], session.class_names)
        rounds = run_simulation(session, reviewer, 3, evaluate=False)
    samples_at_start = rounds["samples_left"] + rounds["n_reviewed"]
    errors_at_start = rounds["errors_left"] + rounds["n_errors_found"]
    reviewed = rounds["round"] > 0
    assert np.allclose(rounds.loc[reviewed, "base_rate"], (errors_at_start / samples_at_start)[reviewed])
    assert not np.isclose(rounds.loc[1, "base_rate"], rounds.loc[0, "base_rate"])  # not the count before review
    for k in rounds.index[reviewed]:
        assert f"vs {rounds.loc[k, 'base_rate']:.1%} for random review" in rounds.loc[k, "verdict"]
    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda figure, path: drawn.setdefault("figure", figure))
    plots.plot_rounds(rounds, tmp_path / "r.png")
    line = next(line for line in drawn["figure"].axes[1].get_lines() if line.get_label().startswith("random review"))
    assert np.allclose(line.get_ydata(), rounds.loc[reviewed, "base_rate"])
