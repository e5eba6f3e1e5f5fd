"""What has a session done so far? Its rounds, its audit trail and a status summary, as tables and dicts."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from coreclean.sessions.store import ACTIONS, HIT_ACTIONS, SessionStore

__all__ = ["ROUND_TABLE_COLUMNS", "rounds_table", "decision_table", "last_errors_left_by_class", "session_status"]

ROUND_TABLE_COLUMNS = [
    "round", "n_reviewed", "n_errors_found", "n_skipped", "hit_rate", "reviewed_total", "errors_found_total",
    "auroc", "auroc_low", "auroc_high", "auroc_change", "change_low", "change_high", "errors_left", "samples_left",
    "base_rate", "plateau", "verdict", "update_seconds", "eval_seconds", "closed_at",
]
"""Columns of :func:`rounds_table`."""

_COUNTS = ("round", "n_reviewed", "n_errors_found", "n_skipped", "samples_left")


def rounds_table(closed: pd.DataFrame) -> pd.DataFrame:
    """The closed rounds (round 0 = baseline), one row each, with cumulative counts; counts are integers.

    ``base_rate`` is the rate the round's verdict compared its hit rate with (the hit rate random
    review would have had in the round, :attr:`RoundResult.base_rate`); ``errors_left`` and
    ``samples_left`` are as of the round's end.
    """
    if closed.empty:
        return pd.DataFrame(columns=ROUND_TABLE_COLUMNS)
    frame = closed.rename(columns={"at": "closed_at"}).copy()
    for column in _COUNTS:
        frame[column] = frame[column].fillna(0).astype(np.int64)
    frame["reviewed_total"] = frame["n_reviewed"].cumsum()
    frame["errors_found_total"] = frame["n_errors_found"].cumsum()
    frame["plateau"] = frame["plateau"].fillna(0).astype(bool)
    return frame[ROUND_TABLE_COLUMNS].reset_index(drop=True)


def last_errors_left_by_class(closed: pd.DataFrame) -> dict[str, float]:
    """Errors estimated left per class as of the last closed round (empty before any)."""
    if closed.empty or not closed.iloc[-1]["evidence"]:
        return {}
    return dict(json.loads(closed.iloc[-1]["evidence"]).get("errors_left_by_class", {}))


def decision_table(log: pd.DataFrame, sample_ids: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Every decision and undo record of ``log``, with sample ids, class names, ``revoked`` and ``audit`` flags."""
    names = np.asarray(class_names, dtype=object)
    return pd.DataFrame({
        "decision_id": log["id"], "round": log["round"],
        "id": sample_ids[log["idx"].to_numpy(np.int64)].astype(str), "action": log["action"],
        "old_label": [names[int(v)] if not pd.isna(v) else "" for v in log["old_label"]],
        "new_label": [names[int(v)] if not pd.isna(v) else "" for v in log["new_label"]],
        "weight": log["weight"], "reviewer": log["reviewer"], "score": log["score"],
        "decided_at": log["decided_at"], "undoes": log["undoes"], "revoked": log["revoked"], "audit": log["audit"],
    })


def session_status(store: SessionStore, settings: dict[str, Any]) -> dict[str, Any]:
    """A summary of the session in ``store`` for people and pages; ``settings`` are passed through.

    Returns
    -------
    dict
        ``settings`` (the session's ``path, cache_dir, classes, against, batch_size, allocation,
        audit, method``), then ``round, batch_shown,
        batch_decided, pending_decisions, reviewed_total, errors_found_total, actions (counts per
        action), n_rounds_closed, last_verdict, plateau, errors_left, errors_left_by_class,
        samples_left, base_rate`` (the last five as of the last closed round, None before it).
    """
    live = store.live_decisions()
    closed = store.closed_rounds()
    rounds = rounds_table(closed)
    open_round = int(closed["round"].max()) + 1 if len(closed) else 0
    batch = store.batch(open_round)
    decided_now = live[live["round"] == open_round]
    last = rounds.iloc[-1] if len(rounds) else None
    return {
        **settings, "round": open_round, "batch_shown": len(batch),
        "batch_decided": int(batch["idx"].isin(decided_now["idx"]).sum()) if len(batch) else 0,
        "pending_decisions": len(decided_now),
        "reviewed_total": int((live["action"] != "skip").sum()),
        "errors_found_total": int(live["action"].isin(HIT_ACTIONS).sum()),
        "actions": {a: int((live["action"] == a).sum()) for a in ACTIONS},
        "n_rounds_closed": max(len(rounds) - 1, 0),
        "last_verdict": None if last is None else last["verdict"],
        "plateau": None if last is None or last["round"] == 0 else bool(last["plateau"]),
        "errors_left": None if last is None else float(last["errors_left"]),
        "errors_left_by_class": last_errors_left_by_class(closed),
        "samples_left": None if last is None else int(last["samples_left"]),
        "base_rate": None if last is None else float(last["base_rate"]),
    }
