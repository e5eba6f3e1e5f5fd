"""How is a decision taken back or changed? Undo and revise, as appended records (nothing is deleted)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from coreclean.exceptions import DecisionError, SessionError
from coreclean.sessions import state
from coreclean.sessions.decisions import validate_decisions
from coreclean.sessions.store import SessionStore

__all__ = ["undo", "revise"]


def undo(store: SessionStore, scope: str, *, open_round: int, reviewer: str | None) -> tuple[pd.DataFrame, bool]:
    """Append undo records: ``(the revoked live decisions, whether a closed round was reopened)``.

    ``scope="decision"`` revokes the open round's most recent live decision; ``"round"`` all of the
    open round's, or, when it has none, reopens the last closed round (its close and its decisions
    are revoked; its batch is shown again).

    Raises
    ------
    SessionError
        Nothing to undo, or an unknown scope.
    """
    if scope not in ("decision", "round"):
        raise SessionError(f"scope must be 'decision' or 'round'; got {scope!r}.")
    live = store.live_decisions()
    current = live[live["round"] == open_round]
    if scope == "decision":
        if current.empty:
            raise SessionError(f"no decision to undo in the open round {open_round}; "
                               "`coreclean session undo --session FILE --round` reopens the previous round, "
                               "`coreclean session revise --session FILE ID ACTION` changes one decision of it.")
        target = current.iloc[[-1]]
    elif not current.empty:
        target = current
    else:
        if open_round <= 1:
            raise SessionError("nothing to undo: no decision yet and no round closed after the baseline.")
        target = live[live["round"] == open_round - 1]
        store.add_round_event(open_round - 1, "reopen", undo_decisions=[
            {"round": open_round - 1, "idx": int(r.idx), "undoes": int(r.id), "reviewer": reviewer}
            for r in target.itertuples()])
        return target, True
    store.add_decisions([{"round": open_round, "idx": int(r.idx), "action": "undo", "undoes": int(r.id),
                          "reviewer": reviewer} for r in target.itertuples()])
    return target, False


def revise(store: SessionStore, id_index: Mapping[str, int], class_names: Sequence[str], start_labels: np.ndarray,
           start_weights: np.ndarray, decision: pd.DataFrame, *, open_round: int) -> int:
    """Replace one decision of the last closed round (one transaction); return that round's number.

    ``decision`` is a one-row frame ``id, action, new_label, weight, reviewer``. Only the last closed
    round can be revised, and only while the open round has no decision, so no later result rests
    on the old decision. The caller recomputes the round's result.

    Raises
    ------
    DecisionError
        Unknown id, action or label; a sample with no decision in a closed round; an earlier round.
    """
    live = store.live_decisions()
    sample_id = str(decision.iloc[0]["id"]).strip()
    idx = id_index.get(sample_id)
    previous = live[live["idx"] == idx] if idx is not None else live.iloc[0:0]
    if previous.empty or int(previous.iloc[-1]["round"]) >= open_round:
        raise DecisionError(f"{sample_id!r} has no decision in a closed round; decide it in the open round "
                            "(`coreclean session apply`) instead.")
    target_round = int(previous.iloc[-1]["round"])
    if target_round != open_round - 1 or not live[live["round"] == open_round].empty:
        raise DecisionError(
            f"{sample_id!r} was decided in round {target_round}; only the last closed round ({open_round - 1}) "
            "can be revised, and only while the open round has no decisions "
            "(`coreclean session undo --session FILE --round` reopens rounds one by one).")
    shown = store.batch(target_round)
    rows = validate_decisions(
        decision, round_number=target_round, id_index=id_index, class_names=class_names,
        labels=state.replay(start_labels, start_weights, state.decided_before(live, target_round))[0],
        decided_earlier=set(live.loc[live["round"] < target_round, "idx"].astype(int)),
        batch_scores=dict(zip(shown["idx"].astype(int), shown["score"].astype(float))),
    )
    reviewer = rows[0]["reviewer"] if rows else None
    store.add_decisions([{"round": target_round, "idx": int(idx), "action": "undo",
                          "undoes": int(previous.iloc[-1]["id"]), "reviewer": reviewer}, *rows])
    return target_round
