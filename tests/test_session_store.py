"""The session file: schema, append-only log, one transactional write path."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from coreclean.exceptions import SessionError
from coreclean.sessions.store import SCHEMA_VERSION, SessionStore


def new_store(path, n=5):
    store = SessionStore(path, create=True)
    store.initialize({"cache_dir": "x", "classes": ["a"]}, [f"s{i}" for i in range(n)], np.zeros(n, int), np.ones(n))
    return store


def test_schema_is_one_constant_with_a_version(tmp_path):
    store = new_store(tmp_path / "s.session")
    tables = {row[0] for row in store._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "samples", "batch_items", "decisions", "rounds", "evaluations"} <= tables
    assert store.meta()["schema_version"] == SCHEMA_VERSION
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    again = SessionStore(tmp_path / "s.session")  # CREATE IF NOT EXISTS is idempotent
    assert len(again.snapshot()) == 5


def test_decisions_are_appended_and_undone_by_records(tmp_path):
    store = new_store(tmp_path / "s.session")
    first, second = store.add_decisions([{"round": 1, "idx": 0, "action": "keep"},
                                         {"round": 1, "idx": 1, "action": "relabel", "new_label": 1}])
    store.add_decisions([{"round": 1, "idx": 1, "action": "undo", "undoes": second}])
    log = store.decisions()
    assert log["action"].tolist() == ["keep", "relabel", "undo"]
    assert log["revoked"].tolist() == [False, True, False]
    assert store.live_decisions()["id"].tolist() == [first]
    # a later decision on the same sample supersedes, the earlier row stays
    store.add_decisions([{"round": 1, "idx": 0, "action": "drop", "weight": 0.0}])
    assert store.live_decisions()["action"].tolist() == ["drop"]
    assert len(store.decisions()) == 4


def test_round_events_close_and_reopen(tmp_path):
    store = new_store(tmp_path / "s.session")
    probs = np.full((5, 2), 0.5)
    rid = store.add_round_event(0, "close", metrics={"n_reviewed": 0, "evidence": {"a": 1}},
                                evaluation=(probs, np.zeros(5, int), np.ones(5)))
    store.add_round_event(1, "close", metrics={"n_reviewed": 3})
    store.add_round_event(1, "reopen")
    assert store.closed_rounds()["round"].tolist() == [0]
    back = store.evaluation(rid)
    assert np.allclose(back[0], probs) and back[1].dtype == np.int64
    assert len(store.round_events()) == 3


def test_a_prepared_batch_is_handed_out_only_while_the_log_is_as_it_was_drawn(tmp_path):
    store = new_store(tmp_path / "s.session")
    rows = [(0, 3, 0, 0.9, 1, 0.8, False), (1, 1, 0, 0.5, 0, 0.6, True)]
    version = store.log_version()
    assert store.prepare_batch(1, version, rows) and store.prepared_batch(1) == rows
    assert store.prepared_batch(2) is None
    store.add_decisions([{"round": 1, "idx": 0, "action": "keep"}])  # the log moved: drawn from another state
    assert store.prepared_batch(1) is None
    assert not store.prepare_batch(1, version, rows)  # a draw from before that decision is not kept either
    assert store.prepared_batch(1) is None and store.batch(1).empty  # never counted as shown


def test_failed_write_rolls_back(tmp_path):
    store = new_store(tmp_path / "s.session")
    with pytest.raises(SessionError, match="rolled back"):
        store.add_decisions([{"round": 1, "idx": 0, "action": "keep"},
                             {"round": 1, "idx": 1, "action": "explode"}])  # CHECK constraint fails
    assert store.decisions().empty


def test_read_only_and_foreign_files(tmp_path):
    new_store(tmp_path / "s.session").close()
    store = SessionStore(tmp_path / "s.session", read_only=True)
    with pytest.raises(SessionError, match="read-only"):
        store.add_decisions([{"round": 1, "idx": 0, "action": "keep"}])
    assert len(store.snapshot()) == 5
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(SessionError, match="not a coreclean session"):
        SessionStore(other)
    with pytest.raises(SessionError, match="already holds a session"):
        new_store(tmp_path / "s.session")


def test_newer_schema_is_refused(tmp_path):
    store = new_store(tmp_path / "s.session")
    store._conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    store.close()
    with pytest.raises(SessionError, match="newer"):
        SessionStore(tmp_path / "s.session")
