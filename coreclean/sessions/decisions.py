"""Is this batch of review decisions valid? Reading a decisions file and checking it as a whole, as pure functions.

:func:`read_decisions` turns a CSV or a DataFrame into the columns :data:`DECISION_COLUMNS` (read by
name, any order, extra columns ignored, rows with an empty ``action`` left out as undecided).
:func:`validate_decisions` checks every row against the session's state and returns the rows to
append, or raises one :class:`~coreclean.exceptions.DecisionError` listing every problem: a
decisions file is applied all or nothing.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from coreclean.exceptions import DecisionError, SessionError
from coreclean.sessions.store import ACTIONS

__all__ = [
    "BATCH_COLUMNS", "DECISION_COLUMNS", "DEFAULT_DOWNWEIGHT", "read_decisions", "validate_decisions",
    "resolve_class", "preview",
]

BATCH_COLUMNS = ["id", "path", "label", "suggested_label", "suggested_prob", "score", "action", "new_label"]
"""Columns of the headless review CSV (the reviewer fills ``action`` and, for relabel, ``new_label``)."""

DECISION_COLUMNS = ("id", "action", "new_label", "weight", "reviewer")
"""Columns read from a decisions file (only ``id`` and ``action`` are required)."""

DEFAULT_DOWNWEIGHT = 0.5
"""Weight given by ``downweight`` when no weight is named."""


def read_decisions(decisions: pd.DataFrame | str | os.PathLike, *, reviewer: str | None = None) -> pd.DataFrame:
    """Return the decided rows of ``decisions`` with exactly the columns :data:`DECISION_COLUMNS`.

    Columns are matched by name (case and surrounding spaces ignored); missing optional columns are
    added empty; rows whose ``action`` is blank are dropped (not decided yet). ``reviewer`` fills
    rows that name none.

    Raises
    ------
    DecisionError
        If the file cannot be read or lacks ``id`` or ``action``.
    """
    if not isinstance(decisions, pd.DataFrame):
        try:
            decisions = pd.read_csv(decisions, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise DecisionError(f"cannot read decisions file {decisions}: {err}") from err
    frame = decisions.copy()
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("id", "action") if c not in frame.columns]
    if missing:
        raise DecisionError(f"decisions lack column(s) {missing}; need id,action[,new_label,weight,reviewer]; "
                            f"got {list(decisions.columns)}.")
    for column in DECISION_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame["action"] = frame["action"].map(lambda a: "" if _blank(a) else str(a).strip().lower())
    frame = frame[frame["action"] != ""]
    if reviewer is not None:
        frame["reviewer"] = [reviewer if _blank(r) else r for r in frame["reviewer"]]
    return frame[list(DECISION_COLUMNS)].reset_index(drop=True)


def validate_decisions(
    frame: pd.DataFrame,
    *,
    round_number: int,
    id_index: Mapping[str, int],
    class_names: Sequence[str],
    labels: np.ndarray,
    decided_earlier: set[int],
    batch_scores: Mapping[int, float],
    current: Mapping[int, tuple[str, int | None, float | None]] | None = None,
    first_line: int | None = None,
) -> list[dict[str, Any]]:
    """Check decisions against a session's state; return the rows to append to the decision log.

    Parameters
    ----------
    frame : DataFrame
        Columns :data:`DECISION_COLUMNS` (see :func:`read_decisions`).
    round_number : int
        The open round the decisions belong to.
    id_index : mapping of str to int
        Sample id -> row index.
    class_names : sequence of str
    labels : ndarray of int
        Each sample's label at the start of the open round (a relabel must change it).
    decided_earlier : set of int
        Rows decided in a closed round (they need ``session revise``).
    batch_scores : mapping of int to float
        The open round's batch: row -> score when shown. A decision must name a sample of it.
    current : mapping, optional
        Row -> ``(action, new_label, weight)`` of the live decision already recorded in this round.
        A row that repeats it exactly is left out (re-applying a file after a crash is idempotent);
        a row that changes it replaces it.
    first_line : int, optional
        Line number of the first row in its file (for messages); None numbers decisions from 1.

    Returns
    -------
    list of dict
        Rows for :meth:`~coreclean.sessions.store.SessionStore.add_decisions`.

    Raises
    ------
    DecisionError
        Listing every problem (unknown ids, actions or labels, ids outside the batch, duplicate or
        conflicting rows, ...); nothing is to be recorded.
    """
    current = current or {}
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: dict[int, tuple] = {}
    for position, record in enumerate(frame.itertuples(index=False)):
        where = f"line {first_line + position}" if first_line is not None else f"decision {position + 1}"
        sample_id = str(record.id).strip() if not _blank(record.id) else ""
        action = str(record.action).strip().lower()
        idx = id_index.get(sample_id)
        if idx is None:
            problems.append(f"{where}: unknown sample id {sample_id!r}")
            continue
        if action not in ACTIONS:
            problems.append(f"{where}: unknown action {action!r} for {sample_id!r}; use one of {list(ACTIONS)}")
            continue
        if idx in decided_earlier:
            problems.append(f"{where}: {sample_id!r} was decided in an earlier round; change it with "
                            f"`coreclean session revise --session FILE {sample_id} ACTION`")
            continue
        if idx not in batch_scores:
            problems.append(f"{where}: {sample_id!r} is not in round {round_number}'s batch; only the samples "
                            "`coreclean session next` showed can be decided")
            continue
        new_label = None
        if not _blank(record.new_label):
            new_label = _label_index(record.new_label, class_names)
            if new_label is None:
                problems.append(f"{where}: unknown label {record.new_label!r} for {sample_id!r}; known classes: "
                                f"{preview(list(class_names))}")
                continue
        weight = None
        if not _blank(record.weight):
            try:
                weight = float(record.weight)
            except (TypeError, ValueError):
                problems.append(f"{where}: weight {record.weight!r} for {sample_id!r} is not a number")
                continue
        problem, weight = _check_action(action, new_label, weight, int(labels[idx]), sample_id, class_names,
                                        record.new_label)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        key = (action, new_label, weight)
        if idx in seen:
            kind = "duplicate" if seen[idx] == key else "conflicting"
            problems.append(f"{where}: {kind} decision for {sample_id!r} (it appears more than once)")
            continue
        seen[idx] = key
        if current.get(idx) == key:
            continue  # already recorded exactly so: re-applying the same file changes nothing
        reviewer = None if _blank(record.reviewer) else str(record.reviewer)
        rows.append({"round": round_number, "idx": idx, "action": action, "old_label": int(labels[idx]),
                     "new_label": new_label, "weight": weight, "reviewer": reviewer, "score": batch_scores[idx]})
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise DecisionError(f"{len(problems)} problem(s), nothing was applied: {shown}")
    return rows


def _check_action(action: str, new_label: int | None, weight: float | None, label: int, sample_id: str,
                  class_names: Sequence[str], raw_label: object) -> tuple[str | None, float | None]:
    """The rules tying an action to its label and weight: ``(problem or None, the weight to record)``."""
    if action == "relabel":
        if new_label is None:
            return f"relabel of {sample_id!r} needs a new_label", weight
        if new_label == label:
            return (f"relabel of {sample_id!r} to its current label {class_names[new_label]!r}; "
                    "use keep"), weight
    elif new_label is not None:
        return f"{action} of {sample_id!r} conflicts with new_label {raw_label!r} (only relabel takes one)", weight
    if action == "downweight":
        weight = DEFAULT_DOWNWEIGHT if weight is None else weight
        if math.isnan(weight) or not 0.0 < weight <= 1.0:
            return f"downweight of {sample_id!r} needs a weight in (0, 1]; got {weight}", weight
    elif action == "drop":
        if weight not in (None, 0.0):
            return f"drop of {sample_id!r} sets weight 0; got weight {weight}", weight
        weight = 0.0
    elif weight is not None:
        return f"{action} of {sample_id!r} takes no weight; got {weight}", weight
    return None, weight


def resolve_class(name: str | None, class_names: Sequence[str]) -> int:
    """Index of class ``name``; :class:`SessionError` with close matches when there is none."""
    if name in class_names:
        return list(class_names).index(name)
    close = difflib.get_close_matches(str(name), list(class_names), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise SessionError(f"no class {name!r} in this cache; known classes: {preview(list(class_names))}.{hint}")


def preview(names: list[str]) -> str:
    """The first ten names, and how many more there are."""
    return str(names[:10]) + (f" (+{len(names) - 10} more)" if len(names) > 10 else "")


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        if pd.isna(value):
            return True
    except (TypeError, ValueError):
        pass
    return str(value).strip() == ""


def _label_index(value: object, class_names: Sequence[str]) -> int | None:
    text = str(value).strip()
    if text in class_names:
        return list(class_names).index(text)
    if isinstance(value, (int, np.integer)) and 0 <= int(value) < len(class_names):
        return int(value)
    return None
