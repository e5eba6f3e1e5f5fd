"""Random audits: samples drawn by chance beside the ranked ones, kept apart in the hit rate, drawn the same every time."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest
from conftest import make_feature_cache

import coreclean
from coreclean.cli import main
from coreclean.exceptions import SessionError
from coreclean.sessions.batches import choose_audits
from coreclean.sessions.store import SCHEMA, SessionStore

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_feature_cache(tmp_path_factory.mktemp("audits"), n_per_class=80)


def start(toy, path, **kwargs):
    options = {"classes": ["cat", "dog"], "batch_size": 6, "evaluate": False, "allocation": "fixed", "audit": 4,
               "n_threads": 1}
    options.update(kwargs)
    return coreclean.CleaningSession.start(toy[0], path, **options)


def test_choose_audits_draws_outside_the_ranked_decided_and_dropped():
    labels = np.repeat([0, 1], 50)
    weights = np.ones(100)
    weights[[0, 1]] = 0.0
    decided = np.zeros(100, dtype=bool)
    decided[[2, 3]] = True
    ranked = [4, 5, 50]
    drawn = choose_audits(labels, weights, decided, [1, 0], ranked, 5, seed=(0, 1))
    assert [c for _, c in drawn] == [1] * 5 + [0] * 5
    rows = [i for i, _ in drawn]
    assert len(set(rows)) == 10 and not set(rows) & {0, 1, 2, 3, 4, 5, 50}
    assert all(labels[i] == c for i, c in drawn)
    assert choose_audits(labels, weights, decided, [1, 0], ranked, 5, seed=(0, 1)) == drawn
    assert choose_audits(labels, weights, decided, [1, 0], ranked, 5, seed=(0, 2)) != drawn  # a new round, a new draw
    assert choose_audits(labels, weights, decided, [1, 0], ranked, 0, seed=(0, 1)) == []
    small = choose_audits(labels, weights, decided, [0], list(range(4, 48)), 5, seed=(0, 1))
    assert sorted(i for i, _ in small) == [48, 49]  # fewer where fewer are left


def test_a_batch_shows_each_class_ranked_then_its_audits(toy, tmp_path):
    with start(toy, tmp_path / "s.session") as session:
        assert session.audit == 4
        batch = session.next_batch()
        assert len(batch) == 2 * (6 + 4)
        for name, group in batch.groupby("class", sort=False):
            assert group["audit"].tolist() == [0] * 6 + [1] * 4
            ranked, audits = group[group["audit"] == 0], group[group["audit"] == 1]
            assert np.all(np.diff(ranked["score"].to_numpy()) <= 1e-12)  # ranked: most suspicious first
            assert audits["score"].max() <= ranked["score"].min()  # drawn from what the ranking left
            assert (group["label"] == name).all()
        assert batch["class"].tolist()[:10] == ["cat"] * 10
        assert session.next_batch()["id"].tolist() == batch["id"].tolist()  # idempotent


def test_the_hit_rate_leaves_audits_out_and_the_counts_keep_them(toy, tmp_path):
    with start(toy, tmp_path / "s.session") as session:
        batch = session.next_batch()
        other = {"cat": "dog", "dog": "cat"}
        decisions = pd.DataFrame({"id": batch["id"], "action": np.where(batch["audit"] == 1, "relabel", "keep"),
                                  "new_label": np.where(batch["audit"] == 1, batch["class"].map(other), "")})
        session.apply(decisions)
        result = session.close_round()
        assert result.n_reviewed == 20 and result.n_errors_found == 8
        assert result.hit_rate == 0.0  # none of the 12 ranked reviews was an error
        assert result.verdict.evidence["audits_reviewed"] == 8 and result.verdict.evidence["audit_errors"] == 8
        assert "8 random audits found 8" in result.verdict.summary
        log = session.decisions()
        assert set(log.loc[log["audit"], "id"]) == set(batch.loc[batch["audit"] == 1, "id"])
        assert session.status()["audit"] == 4


def test_the_batch_drawn_ahead_is_the_batch_a_new_process_draws(toy, tmp_path):
    path = tmp_path / "s.session"
    with start(toy, path) as session:
        session.apply(pd.DataFrame({"id": session.next_batch()["id"], "action": "keep"}))
        session.close_round()
        prepared = session._store.prepared_batch(2)
        assert prepared is not None and sum(row[-1] for row in prepared) == 8
    with coreclean.CleaningSession.open(path, cache_dir=toy[0], n_threads=1) as session:
        drawn = session._model.draw_batch(session._store, 2)
        assert [row[1] for row in drawn] == [row[1] for row in prepared]
        assert [row[-1] for row in drawn] == [row[-1] for row in prepared]
        batch = session.next_batch()
        assert batch["audit"].tolist() == [int(row[-1]) for row in prepared]
        assert not set(batch["id"]) & set(session.decisions()["id"])  # never a sample already reviewed


def test_bad_audit_counts_are_refused(toy, tmp_path):
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(SessionError, match="audit must be"):
            start(toy, tmp_path / f"bad-{bad}.session", audit=bad)
    with pytest.raises(SystemExit):
        main(["session", "start", "--cache", str(toy[0]), "--class", "cat", "--audit", "-2",
              "--session", str(tmp_path / "cli.session")])
    assert not (tmp_path / "cli.session").exists()


def test_cli_writes_the_audit_column_and_says_so(toy, tmp_path, capsys):
    session = tmp_path / "s.session"
    common = ["--session", str(session), "--threads", "1"]
    assert main(["session", "start", "--cache", str(toy[0]), "--class", "cat", "--per-class", "5", "--audit", "3",
                 "--no-evaluate", *common]) == 0
    assert "3 random audit(s) per class" in capsys.readouterr().out
    assert main(["session", "next", *common, "--out", str(tmp_path), "--no-sheet"]) == 0
    sheet = pd.read_csv(tmp_path / "round-1.csv")
    assert sheet["audit"].tolist() == [0] * 5 + [1] * 3
    sheet["action"] = "keep"
    sheet.to_csv(tmp_path / "round-1.csv", index=False)
    capsys.readouterr()
    assert main(["session", "apply", *common, str(tmp_path / "round-1.csv")]) == 0
    assert "3 random audits found 0" in capsys.readouterr().out


def test_a_version_2_file_reads_with_no_audits_and_gains_the_column_when_written(tmp_path):
    path = tmp_path / "old.session"
    old_schema = SCHEMA.replace("    audit           INTEGER NOT NULL DEFAULT 0, -- 1: drawn at random from the "
                                "unreviewed pool, not by rank\n", "")
    assert old_schema != SCHEMA
    conn = sqlite3.connect(path)
    conn.executescript(old_schema)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    conn.execute("INSERT INTO samples VALUES (0, 'a', 0, 1.0)")
    conn.execute("INSERT INTO batch_items VALUES (1, 0, 0, 0, 0.9, 1, 0.8, 0.0)")
    conn.commit()
    conn.close()
    reader = SessionStore(path, read_only=True)
    assert reader.batch(1)["audit"].tolist() == [False]
    reader.close()
    writer = SessionStore(path)
    assert writer.batch(1)["audit"].tolist() == [False]
    writer.add_batch(2, [(0, 0, 0, 0.5, 1, 0.6, True)])
    assert writer.batch(2)["audit"].tolist() == [True]
    writer.close()


def test_audits_correct_a_count_in_proportion_to_their_evidence():
    from coreclean.sessions.errors_left import audit_corrected_count

    assert audit_corrected_count(100.0, 5000, np.array([True]), np.array([0.02])) == (100.0, 50.0)  # one audit: none
    many_found = np.r_[np.ones(40, bool), np.zeros(60, bool)]
    estimate, sd = audit_corrected_count(100.0, 5000, many_found, np.full(100, 0.02))
    assert 1000 < estimate < 5000 * 0.4 and sd < 0.5 * estimate  # 40 % wrong in the audits: far above the 100 believed
    small, _ = audit_corrected_count(5.0, 240, np.zeros(15, bool), np.full(15, 0.02))
    assert 4.0 < small <= 5.0  # 15 clean audits of 240 barely move a count of 5
    nothing, sd = audit_corrected_count(100.0, 5000, np.zeros(100, bool), np.full(100, 0.02))
    assert nothing < 100.0 and sd >= 5000 * np.sqrt(0.02 * 0.98 / 100) * 0.5  # floored: finding none is not certainty


def test_audits_that_find_errors_raise_the_estimate_and_show_its_spread(toy, tmp_path):
    results = {}
    for audit in (0, 20):
        with start(toy, tmp_path / f"s{audit}.session", audit=audit, classes=["cat"]) as session:
            batch = session.next_batch()
            is_audit = batch["audit"] == 1
            session.apply(pd.DataFrame({"id": batch["id"], "action": np.where(is_audit, "relabel", "keep"),
                                        "new_label": np.where(is_audit, "dog", "")}))
            results[audit] = session.close_round()
    assert results[20].errors_left > 2 * results[0].errors_left + 5  # every audit was wrong: the pool holds many
    assert "cat" in results[20].verdict.evidence["errors_left_sd_by_class"]
    assert "one sd from the audits" in results[20].verdict.summary
    assert results[0].verdict.evidence["errors_left_sd_by_class"] == {}


def test_audit_residuals_are_measured_at_the_pool_scores_of_now_not_when_shown():
    """#10: residuals at the scores audits had when shown drifted the count low as the scores moved (15,000 for 17,250)."""
    from coreclean.sessions.stopping import errors_left_by_class

    labels = np.zeros(1000, dtype=np.int64)
    scores = np.full(1000, 0.1)  # the pool is scored 0.1 now
    audits = np.arange(900, 1000)  # 100 audits, 10 of them errors: the pool's rate now
    decided = pd.DataFrame({"idx": audits, "action": np.where(np.arange(100) < 10, "relabel", "keep"),
                            "score": 0.3, "audit": True, "old_label": 0})  # shown when the scale said 0.3
    weights = np.ones(1000)
    now = np.full(100, 0.1)
    at_now, _, _ = errors_left_by_class(scores, labels, weights, decided, [0], audit_scores=now)
    at_shown, _, _ = errors_left_by_class(scores, labels, weights, decided, [0])
    assert abs(at_now[0] - 90) < 25  # 10 % of the 900 left, as the audits found
    assert at_shown[0] < 0.5 * at_now[0]  # at the stale scores the audits look too clean: the count sinks


def test_a_session_measures_its_audits_at_the_scores_of_now(toy, tmp_path, monkeypatch):
    from coreclean.sessions import model

    seen = {}
    original = model.errors_left_by_class

    def spy(*args, **kwargs):
        seen["audit_scores"] = kwargs.get("audit_scores")
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "errors_left_by_class", spy)
    with start(toy, tmp_path / "s.session", classes=["cat"]) as session:
        batch = session.next_batch()
        is_audit = (batch["audit"] == 1).to_numpy()
        session.apply(pd.DataFrame({"id": batch["id"], "action": np.where(is_audit, "relabel", "keep"),
                                    "new_label": np.where(is_audit, "dog", "")}))
        session.close_round()
        ranker = session.ranker()
        ids = list(session.sample_ids)
        rows = np.array([ids.index(i) for i in batch["id"][is_audit]])
        cat = session.class_names.index("cat")
    measured = seen["audit_scores"]
    assert np.isfinite(measured).sum() == is_audit.sum()  # one score for each audit, NaN elsewhere
    np.testing.assert_allclose(np.sort(measured[np.isfinite(measured)]),
                               np.sort(ranker.scores_under(rows, np.full(rows.size, cat))))


def test_start_suggests_audits_on_heavy_noise_and_the_suggestion_works(toy, tmp_path, capsys):
    heavy = make_feature_cache(tmp_path / "heavy", n_per_class=80, rate=0.35)[0]
    session = tmp_path / "s.session"
    args = ["session", "start", "--class", "cat", "--class", "dog", "--per-class", "5", "--no-evaluate",
            "--threads", "1", "--session", str(session)]
    assert main([*args, "--cache", str(heavy)]) == 0
    note = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("note:"))
    assert "--audit 5" in note and str(session) in note
    session.unlink()  # what the note says to do
    assert main([*args, "--cache", str(heavy), "--audit", "5"]) == 0
    assert "note:" not in capsys.readouterr().out
    session.unlink()
    assert main([*args, "--cache", str(toy[0])]) == 0  # 12 % planted: the ranking's own estimate is trusted
    assert "note:" not in capsys.readouterr().out


def test_an_against_session_measures_its_audits_at_the_partner_probability_now(toy, tmp_path):
    from coreclean.sessions.state import audited

    with start(toy, tmp_path / "s.session", classes=["cat"], against="dog") as session:
        batch = session.next_batch()
        session.apply(pd.DataFrame({"id": batch["id"], "action": "keep"}))
        session.close_round()
        ranker = session.ranker()
        decided = session.live_decisions()
        measured = session._model.audit_scores(ranker, decided)
        rows = decided.loc[audited(decided), "idx"].to_numpy(np.int64)
        dog = session.class_names.index("dog")
    assert rows.size == 4
    np.testing.assert_allclose(measured[audited(decided)], ranker.probs_[rows, dog])
    assert np.isnan(measured[~audited(decided)]).all()


def test_audits_are_suggested_only_for_heavy_noise_in_a_session_without_them():
    from coreclean.sessions.errors_left import HEAVY_NOISE_RATE, SUGGESTED_AUDITS, suggested_audits

    assert suggested_audits(HEAVY_NOISE_RATE, 0) == SUGGESTED_AUDITS
    assert suggested_audits(HEAVY_NOISE_RATE - 0.01, 0) == 0
    assert suggested_audits(0.4, 5) == 0  # already audited
    assert suggested_audits(float("nan"), 0) == 0


def test_a_class_whose_top_was_all_right_is_estimated_below_one_whose_top_was_all_wrong():
    """#10: with one shift shared by every class, the two estimates below were equal (same scores, same pool size)."""
    from coreclean.sessions.stopping import errors_left_by_class

    labels = np.repeat([0, 1], 500)
    scores = np.full(1000, 0.1)
    shown = np.concatenate([np.arange(0, 40), np.arange(500, 540)])  # 40 reviewed in each class at score 0.5
    decided = pd.DataFrame({"idx": shown, "action": np.where(labels[shown] == 0, "relabel", "keep"),
                            "score": 0.5, "old_label": labels[shown]})
    errors, samples, _ = errors_left_by_class(scores, labels, np.ones(1000), decided, [0, 1])
    assert samples == {0: 460, 1: 460}
    assert errors[0] > 3 * errors[1]
