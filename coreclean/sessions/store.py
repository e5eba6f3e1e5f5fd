"""Where does a cleaning session live on disk? One SQLite file, append-only, one write path.

The file holds the session's settings (``meta``), the snapshot of every sample's label and weight
when the session started (``samples``), the batches shown to reviewers (``batch_items``), every
decision (``decisions``) and every round closed or reopened (``rounds``, with the out-of-fold
probabilities behind its AUROC in ``evaluations``), and the caller's own model probabilities when
the session ranks with them (``pred_probs``, fixed for its life). Nothing is ever updated or deleted: an undo is
an appended ``decisions`` row with ``action='undo'`` pointing at the decision it revokes, and a
reopened round is an appended ``rounds`` row with ``event='reopen'``. So the audit trail is
complete and the current state is a fold over the log. The one table rewritten is a cache, not the
log: ``prepared_batches``, the next round's batch drawn ahead by the process that closed a round
(with its fitted ranker in hand), so that a new ``session next`` process need not refit; it is read
only while the log is exactly as it was drawn from.

Every write goes through :meth:`SessionStore._write`, one ``BEGIN IMMEDIATE`` ... ``COMMIT``
transaction with ``synchronous=FULL`` in WAL mode: a process killed at any moment loses nothing
that was committed, and a failed write (read-only file, full disk) rolls back and raises
:class:`coreclean.exceptions.SessionError` with the file named, leaving the database as it was.
Several processes may open one file; SQLite's locks serialise their writes (``busy_timeout``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coreclean.exceptions import SessionError

__all__ = ["SCHEMA", "SCHEMA_VERSION", "ACTIONS", "HIT_ACTIONS", "BatchRow", "SessionStore", "RoundRaceError"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3  # 2: the pred_probs table; 3: batch_items.audit (an older coreclean would count audits as ranked)

ACTIONS = ("keep", "relabel", "drop", "downweight", "skip")
"""What a reviewer can decide about a sample. ``skip`` = unsure: counted neither as a hit nor a miss."""

HIT_ACTIONS = ("relabel", "drop", "downweight")
"""Decisions that count as an error found (the label, or the sample, was wrong)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL                      -- JSON
);
CREATE TABLE IF NOT EXISTS samples (         -- snapshot at session start, row order of the embedding set
    idx       INTEGER PRIMARY KEY,
    sample_id TEXT NOT NULL UNIQUE,
    label     INTEGER NOT NULL,
    weight    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_items (     -- what each round showed, so next_batch is idempotent
    round           INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    idx             INTEGER NOT NULL REFERENCES samples(idx),
    class_index     INTEGER NOT NULL,
    score           REAL NOT NULL,
    suggested_label INTEGER NOT NULL,
    suggested_prob  REAL NOT NULL,
    shown_at        REAL NOT NULL,
    audit           INTEGER NOT NULL DEFAULT 0, -- 1: drawn at random from the unreviewed pool, not by rank
    PRIMARY KEY (round, idx)
);
CREATE TABLE IF NOT EXISTS decisions (       -- append-only; 'undo' rows revoke an earlier row
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    round      INTEGER NOT NULL,
    idx        INTEGER NOT NULL REFERENCES samples(idx),
    action     TEXT NOT NULL CHECK (action IN ('keep', 'relabel', 'drop', 'downweight', 'skip', 'undo')),
    old_label  INTEGER,
    new_label  INTEGER,
    weight     REAL,
    reviewer   TEXT,
    score      REAL,
    decided_at REAL NOT NULL,
    undoes     INTEGER REFERENCES decisions(id)
);
CREATE INDEX IF NOT EXISTS decisions_by_round ON decisions (round);
CREATE TABLE IF NOT EXISTS rounds (          -- append-only; a 'reopen' row revokes the round's last 'close'
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    round          INTEGER NOT NULL,
    event          TEXT NOT NULL CHECK (event IN ('close', 'reopen')),
    at             REAL NOT NULL,
    n_reviewed     INTEGER,
    n_errors_found INTEGER,
    n_skipped      INTEGER,
    hit_rate       REAL,
    auroc          REAL,
    auroc_low      REAL,
    auroc_high     REAL,
    auroc_change   REAL,
    change_low     REAL,
    change_high    REAL,
    errors_left    REAL,
    samples_left   INTEGER,
    base_rate      REAL,
    plateau        INTEGER,
    verdict        TEXT,
    update_seconds REAL,
    eval_seconds   REAL,
    evidence       TEXT                      -- JSON
);
CREATE TABLE IF NOT EXISTS pred_probs (      -- the caller's model probabilities (samples x classes), if given
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    probs BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS prepared_batches ( -- a round's batch drawn ahead by the process that closed the round before
    round   INTEGER PRIMARY KEY,
    version TEXT NOT NULL,                   -- the log version it was drawn at (JSON): used only while the log is so
    items   TEXT NOT NULL                    -- JSON [[position, idx, class_index, score, suggested, prob, audit], ...]
);
CREATE TABLE IF NOT EXISTS evaluations (     -- out-of-fold probabilities behind a round's AUROC (paired bootstrap)
    rounds_id INTEGER PRIMARY KEY REFERENCES rounds(id),
    probs     BLOB NOT NULL,
    labels    BLOB NOT NULL,
    weights   BLOB NOT NULL
);
"""

ROUND_COLUMNS = (
    "round", "at", "n_reviewed", "n_errors_found", "n_skipped", "hit_rate", "auroc", "auroc_low", "auroc_high",
    "auroc_change", "change_low", "change_high", "errors_left", "samples_left", "base_rate", "plateau", "verdict",
    "update_seconds", "eval_seconds", "evidence",
)


BatchRow = tuple[int, int, int, float, int, float, bool]
"""One batch item: ``(position, idx, class_index, score, suggested_label, suggested_prob, audit)``."""


class RoundRaceError(SessionError):
    """The decision log changed between reading a round and storing its close (another process decided)."""


def _statements(script: str) -> list[str]:
    """Split a SQL script into whole statements (``executescript`` would commit outside our transaction)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return statements


def _array_blob(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _blob_array(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


class SessionStore:
    """The SQLite file of one session: reads, and the single transactional write path.

    Parameters
    ----------
    path : str or os.PathLike
        The session file. ``":memory:"`` keeps everything in RAM (simulations, benchmarks).
    create : bool
        Create the file and schema if missing; otherwise a missing file is an error.
    read_only : bool
        Open with ``mode=ro``: every write raises :class:`SessionError`. Chosen automatically when the
        file is not writable.

    Raises
    ------
    SessionError
        If the file is missing (and ``create`` is false), is not a coreclean session, has a newer
        schema, or cannot be opened.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = False, read_only: bool = False) -> None:
        self.path = str(path)
        self.in_memory = self.path == ":memory:"
        exists = not self.in_memory and Path(self.path).is_file()
        if not exists and not create and not self.in_memory:
            raise SessionError(f"no session file {self.path}; start one with `coreclean session start`.")
        if exists and not os.access(self.path, os.W_OK):
            read_only = True
        self.read_only = read_only
        if exists:
            _check_is_session_file(self.path)  # before any write: never switch a foreign file to WAL
        try:
            if read_only:
                uri = Path(self.path).resolve().as_uri() + "?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None,
                                             check_same_thread=False)
            else:
                if not self.in_memory:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.DatabaseError, OSError) as err:
            raise SessionError(f"cannot open session file {self.path}: {err}") from err
        if exists:
            self._check_schema()  # before any write: never add tables to a foreign database
        if not read_only:
            self._create_schema()
        self._check_schema()

    # ------------------------------------------------------------------ the one write path
    def check_writable(self) -> None:
        """Raise :class:`SessionError` now if the file is open read-only (before any costly work)."""
        if self.read_only:
            raise SessionError(
                f"session file {self.path} is open read-only (the file or its folder is not writable); "
                "nothing was changed. Copy it somewhere writable or fix its permissions."
            )

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back (and raised) on failure."""
        if self.read_only:
            raise SessionError(
                f"session file {self.path} is open read-only (the file or its folder is not writable); "
                "nothing was changed. Copy it somewhere writable or fix its permissions."
            )
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as err:
            raise SessionError(f"cannot write to session file {self.path}: {err}; nothing was changed.") from err
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            with contextlib.suppress(sqlite3.DatabaseError):
                conn.execute("ROLLBACK")
            hint = " (disk full?)" if "full" in str(err) else (" (read-only?)" if "readonly" in str(err) else "")
            raise SessionError(
                f"cannot write to session file {self.path}: {err}{hint}; the transaction was rolled back and "
                "the session is as it was before."
            ) from err
        except BaseException:
            with contextlib.suppress(sqlite3.DatabaseError):
                conn.execute("ROLLBACK")
            raise

    def _create_schema(self) -> None:
        with self._write() as conn:
            for statement in _statements(SCHEMA):
                conn.execute(statement)
            if not _has_audit_column(conn):  # a version-2 file
                conn.execute("ALTER TABLE batch_items ADD COLUMN audit INTEGER NOT NULL DEFAULT 0")
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                         (json.dumps(SCHEMA_VERSION),))

    def _check_schema(self) -> None:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as err:
            raise SessionError(f"{self.path} is not a coreclean session file: {err}") from err
        if row is None:
            raise SessionError(f"{self.path} is not a coreclean session file (no schema_version).")
        version = json.loads(row[0])
        if version > SCHEMA_VERSION:
            raise SessionError(
                f"session file {self.path} has schema version {version}, newer than this coreclean's "
                f"{SCHEMA_VERSION}; upgrade coreclean."
            )

    def close(self) -> None:
        """Fold the write-ahead log into the file and close the connection (idempotent).

        After a close the session file alone holds every committed decision: it can be copied
        without its ``-wal`` and ``-shm`` companions.
        """
        with contextlib.suppress(sqlite3.Error):
            if not self.read_only and not self.in_memory:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with contextlib.suppress(sqlite3.ProgrammingError):
            self._conn.close()

    # ------------------------------------------------------------------ writes
    def initialize(self, meta: dict[str, Any], sample_ids: Sequence[str], labels: np.ndarray,
                   weights: np.ndarray, pred_probs: np.ndarray | None = None) -> None:
        """Write the settings, the label/weight snapshot and any ``pred_probs`` of a new session (one transaction)."""
        with self._write() as conn:
            if conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]:
                raise SessionError(f"session file {self.path} already holds a session; open it instead, or pick a new file.")
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             [(key, json.dumps(value)) for key, value in meta.items()])
            conn.executemany(
                "INSERT INTO samples (idx, sample_id, label, weight) VALUES (?, ?, ?, ?)",
                zip(range(len(sample_ids)), map(str, sample_ids), map(int, labels), map(float, weights)),
            )
            if pred_probs is not None:
                conn.execute("INSERT INTO pred_probs (id, probs) VALUES (1, ?)",
                             (_array_blob(np.asarray(pred_probs, dtype=np.float64)),))

    def add_batch(self, round_number: int, rows: Iterable[BatchRow]) -> None:
        """Record the batch shown in ``round_number``: ``(position, idx, class_index, score, suggested, prob, audit)`` rows."""
        now = time.time()
        with self._write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO batch_items (round, position, idx, class_index, score, suggested_label, "
                "suggested_prob, shown_at, audit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(round_number, int(p), int(i), int(c), float(s), int(g), float(q), now, int(bool(a)))
                 for p, i, c, s, g, q, a in rows],
            )

    def add_decisions(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Append decisions (and undo records) in one transaction; return their ids."""
        now = time.time()
        ids = []
        with self._write() as conn:
            for row in rows:
                cursor = conn.execute(
                    "INSERT INTO decisions (round, idx, action, old_label, new_label, weight, reviewer, score, "
                    "decided_at, undoes) VALUES (:round, :idx, :action, :old_label, :new_label, :weight, :reviewer, "
                    ":score, :decided_at, :undoes)",
                    {"old_label": None, "new_label": None, "weight": None, "reviewer": None, "score": None,
                     "undoes": None, "decided_at": now, **row},
                )
                ids.append(int(cursor.lastrowid))
        return ids

    def add_round_event(self, round_number: int, event: str, *, metrics: dict[str, Any] | None = None,
                        evaluation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                        undo_decisions: Sequence[dict[str, Any]] = (),
                        expect_version: tuple[int, int] | None = None) -> int:
        """Append a round 'close' (with its metrics and evaluation) or 'reopen' (with undo records), atomically.

        With ``expect_version`` (from :meth:`log_version` when the round was read), raise
        :class:`RoundRaceError` and write nothing if the log changed since: the stored numbers
        must describe exactly the decisions in force.
        """
        metrics = dict(metrics or {})
        if "evidence" in metrics and not isinstance(metrics["evidence"], str):
            metrics["evidence"] = json.dumps(metrics["evidence"])
        columns = ["round", "event", "at", *[k for k in metrics if k in ROUND_COLUMNS and k not in ("round", "at")]]
        values = [round_number, event, time.time(), *[metrics[k] for k in columns[3:]]]
        now = time.time()
        with self._write() as conn:
            if expect_version is not None and self._version(conn) != tuple(expect_version):
                raise RoundRaceError(f"the decisions of round {round_number} changed while it was being closed.")
            cursor = conn.execute(
                f"INSERT INTO rounds ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values)
            rounds_id = int(cursor.lastrowid)
            if evaluation is not None:
                probs, labels, weights = evaluation
                conn.execute("INSERT INTO evaluations (rounds_id, probs, labels, weights) VALUES (?, ?, ?, ?)",
                             (rounds_id, _array_blob(probs.astype(np.float32)), _array_blob(labels.astype(np.int64)),
                              _array_blob(weights.astype(np.float64))))
            for row in undo_decisions:
                conn.execute(
                    "INSERT INTO decisions (round, idx, action, undoes, reviewer, decided_at) "
                    "VALUES (:round, :idx, 'undo', :undoes, :reviewer, :decided_at)",
                    {"reviewer": None, "decided_at": now, **row})
        return rounds_id

    # ------------------------------------------------------------------ reads
    @staticmethod
    def _version(conn: sqlite3.Connection) -> tuple[int, int]:
        row = conn.execute("SELECT (SELECT COALESCE(MAX(id), 0) FROM decisions), "
                           "(SELECT COALESCE(MAX(id), 0) FROM rounds)").fetchone()
        return int(row[0]), int(row[1])

    def log_version(self) -> tuple[int, int]:
        """``(last decision id, last round event id)``: changes whenever anything is appended."""
        return self._version(self._conn)

    def rounds_version(self) -> int:
        """The last round event's id: changes whenever a round is closed or reopened."""
        return self._version(self._conn)[1]

    def meta(self) -> dict[str, Any]:
        """All settings as a dict (JSON-decoded)."""
        return {key: json.loads(value) for key, value in self._conn.execute("SELECT key, value FROM meta")}

    def snapshot(self) -> pd.DataFrame:
        """The start snapshot: columns idx, sample_id, label, weight, ordered by idx."""
        return pd.read_sql_query("SELECT idx, sample_id, label, weight FROM samples ORDER BY idx", self._conn)

    def decisions(self) -> pd.DataFrame:
        """The whole decision log in order, with ``revoked`` (True when a later 'undo' row revokes it) and
        ``audit`` (True when the sample was in its round's batch as a random audit) columns."""
        audit = "COALESCE(b.audit, 0)" if _has_audit_column(self._conn) else "0"  # 0: a version-2 file, read-only
        frame = pd.read_sql_query(f"SELECT d.*, {audit} AS audit FROM decisions d LEFT JOIN batch_items b "
                                  "ON b.round = d.round AND b.idx = d.idx ORDER BY d.id", self._conn)
        revoked = set(frame.loc[frame["action"] == "undo", "undoes"].dropna().astype(int))
        frame["revoked"], frame["audit"] = frame["id"].isin(revoked), frame["audit"].astype(bool)
        return frame

    def live_decisions(self) -> pd.DataFrame:
        """The decisions in force: not revoked, not undo records, the latest per sample; ordered by id."""
        frame = self.decisions()
        live = frame[(frame["action"] != "undo") & ~frame["revoked"]]
        return live.drop_duplicates("idx", keep="last").sort_values("id").reset_index(drop=True)

    def prepare_batch(self, round_number: int, version: tuple[int, int],
                      rows: Sequence[BatchRow]) -> bool:
        """Keep ``rows`` (as :meth:`add_batch` takes them) as ``round_number``'s batch drawn at log ``version``.

        Written only while the log is still at ``version`` (returns whether it was); :meth:`prepared_batch`
        hands the rows out only while it still is, so a batch drawn ahead is drawn from the log in force.
        """
        items = json.dumps([[int(p), int(i), int(c), float(s), int(g), float(q), int(bool(a))]
                            for p, i, c, s, g, q, a in rows])
        with self._write() as conn:
            if self._version(conn) != tuple(version):
                return False
            conn.execute("INSERT OR REPLACE INTO prepared_batches (round, version, items) VALUES (?, ?, ?)",
                         (round_number, json.dumps(list(version)), items))
        return True

    def prepared_batch(self, round_number: int) -> list[BatchRow] | None:
        """The rows :meth:`prepare_batch` kept for ``round_number`` if the log has not moved since; else None."""
        try:
            row = self._conn.execute("SELECT version, items FROM prepared_batches WHERE round = ?",
                                     (round_number,)).fetchone()
        except sqlite3.OperationalError:  # a file from before prepared batches, opened read-only
            return None
        if row is None or tuple(json.loads(row[0])) != self.log_version():
            return None
        return [(int(p), int(i), int(c), float(s), int(g), float(q), bool(a[0]) if a else False)
                for p, i, c, s, g, q, *a in json.loads(row[1])]

    def batch(self, round_number: int) -> pd.DataFrame:
        """The batch shown in ``round_number`` (empty if none yet), in display order."""
        return self.shown(round_number)

    def shown(self, round_number: int | None = None) -> pd.DataFrame:
        """Every batch item shown (in ``round_number`` only, if given), in display order; ``audit`` as bool."""
        audit = "" if _has_audit_column(self._conn) else ", 0 AS audit"  # a version-2 file opened read-only
        where, params = ("", ()) if round_number is None else ("WHERE round = ?", (round_number,))
        items = pd.read_sql_query(f"SELECT *{audit} FROM batch_items {where} ORDER BY round, position", self._conn,
                                  params=params)
        return items.assign(audit=items["audit"].astype(bool))

    def round_events(self) -> pd.DataFrame:
        """The rounds log: every 'close' and 'reopen' row, in order."""
        return pd.read_sql_query("SELECT * FROM rounds ORDER BY id", self._conn)

    def closed_rounds(self) -> pd.DataFrame:
        """The closes in force: for each round, its last 'close' unless a later 'reopen' revoked it."""
        events = self.round_events()
        if events.empty:
            return events
        last = events.drop_duplicates("round", keep="last")
        return last[last["event"] == "close"].sort_values("round").reset_index(drop=True)

    def pred_probs(self) -> np.ndarray | None:
        """The caller's model probabilities stored at start, or None (also for a file older than the table)."""
        if self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pred_probs'").fetchone():
            row = self._conn.execute("SELECT probs FROM pred_probs WHERE id = 1").fetchone()
            if row is not None:
                return _blob_array(row[0])
        return None

    def evaluation(self, rounds_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(probs, labels, weights)`` stored with round-log row ``rounds_id``, or None."""
        row = self._conn.execute("SELECT probs, labels, weights FROM evaluations WHERE rounds_id = ?",
                                 (int(rounds_id),)).fetchone()
        return None if row is None else tuple(_blob_array(blob) for blob in row)  # type: ignore[return-value]


def _has_audit_column(conn: sqlite3.Connection) -> bool:
    return "audit" in {row[1] for row in conn.execute("PRAGMA table_info(batch_items)")}


def _check_is_session_file(path: str) -> None:
    """Refuse a file that is not a coreclean session, reading it without changing it (not even to WAL)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(16)
    except OSError as err:
        raise SessionError(f"cannot open session file {path}: {err}") from err
    if header != b"SQLite format 3\x00":
        raise SessionError(f"{path} is not a coreclean session file (not an SQLite database); "
                           "pick another file with --session.")
    try:
        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise SessionError(f"{path} is not a coreclean session file ({err}); pick another file with --session.") from err
    if row is None:
        raise SessionError(f"{path} is not a coreclean session file (no schema_version); "
                           "pick another file with --session.")
