"""Decision files read by column name and validated as a whole (coreclean.sessions.decisions), as pure functions."""

import numpy as np
import pandas as pd
import pytest

from coreclean.exceptions import DecisionError
from coreclean.sessions.decisions import read_decisions, validate_decisions

NAMES = ["cat", "dog", "fox"]
IDS = {"a": 0, "b": 1, "c": 2, "d": 3}


def _validate(frame, **overrides):
    options = {"round_number": 2, "id_index": IDS, "class_names": NAMES, "labels": np.array([0, 0, 1, 1]),
               "decided_earlier": {3}, "batch_scores": {0: 0.9, 1: 0.8, 2: 0.7}}
    options.update(overrides)
    return validate_decisions(read_decisions(pd.DataFrame(frame)), **options)


def test_columns_are_read_by_name_in_any_order_and_blank_actions_are_undecided(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(" New_Label ,score,ID,Action\ndog,0.3,a,relabel\n,0.2,b,\n", encoding="utf-8")
    frame = read_decisions(path, reviewer="ann")
    assert frame.to_dict("records") == [{"id": "a", "action": "relabel", "new_label": "dog", "weight": None,
                                         "reviewer": "ann"}]


def test_rows_carry_the_old_label_the_score_shown_and_drop_weight():
    rows = _validate({"id": ["a", "b"], "action": ["relabel", "drop"], "new_label": ["fox", ""]})
    assert [(r["idx"], r["old_label"], r["new_label"], r["weight"], r["score"]) for r in rows] == [
        (0, 0, 2, None, 0.9), (1, 0, None, 0.0, 0.8)]


def test_every_problem_is_listed_and_nothing_is_returned():
    with pytest.raises(DecisionError) as caught:
        _validate({"id": ["a", "zzz", "d", "c", "b"], "action": ["relabel", "keep", "keep", "keep", "downweight"],
                   "new_label": ["cat", "", "", "dog", ""], "weight": ["", "", "", "", "2"]})
    message = str(caught.value)
    for expected in ("to its current label 'cat'; use keep", "unknown sample id 'zzz'", "earlier round",
                     "conflicts with new_label", "weight in (0, 1]", "5 problem(s), nothing was applied"):
        assert expected in message


def test_ids_outside_the_batch_are_refused_and_repeats_of_the_live_decision_are_skipped():
    with pytest.raises(DecisionError, match="not in round 2's batch"):
        _validate({"id": ["a"], "action": ["keep"]}, batch_scores={1: 0.5})
    again = _validate({"id": ["a", "b"], "action": ["keep", "skip"]}, current={0: ("keep", None, None)})
    assert [r["idx"] for r in again] == [1]
