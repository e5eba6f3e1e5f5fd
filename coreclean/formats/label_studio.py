"""Review in Label Studio: tasks out, the reviewers' choices back as session decisions.

:func:`export_label_studio` writes ``OUT/tasks.json`` and ``OUT/labeling_config.xml``. Tasks: the
rows of a table such as a session's open batch (``CleaningSession.next_batch()``: a session accepts
decisions only on its open batch), highest coreclean score first, or the first ``top`` of them. Each task has
``data.image`` (``image_root_url`` + the URL-quoted sample id), ``data.given_label`` (its current
label), ``meta.id``, ``meta.score`` (the coreclean score) and one prediction: a ``choices`` result
holding the suggested class. Label Studio accepts prediction scores in [0, 1] only, so the
prediction's ``score`` is the task's rank turned into (0, 1]: ``(n - k) / n`` for the k-th highest
coreclean score of n tasks; sorting by it in Label Studio gives coreclean's order.

:func:`read_label_studio_export` turns Label Studio's JSON export of those tasks back into a
decisions frame (``id, action, new_label, reviewer``) for ``CleaningSession.apply``: ``relabel`` where
the annotator chose another class than the given one, ``keep`` where they chose the given one. Tasks
without an annotation (or with a cancelled one) are left out: undecided.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import pandas as pd

from coreclean._internal.atomic import atomic_write_text
from coreclean.exceptions import DecisionError, ManifestError

__all__ = ["export_label_studio", "labeling_config", "read_label_studio_export"]


def labeling_config(class_names: list[str]) -> str:
    """The Label Studio labeling config: an ``Image`` named ``image`` and single-choice ``Choices``
    named ``label`` holding every class."""
    choices = "\n".join(f"    <Choice value={quoteattr(str(c))}/>" for c in class_names)
    return ('<View>\n  <Image name="image" value="$image"/>\n  <Text name="given" value="given label: $given_label"/>\n'
            f'  <Choices name="label" toName="image" choice="single" showInline="true">\n{choices}\n'
            "  </Choices>\n</View>\n")


def export_label_studio(table: pd.DataFrame, out_dir: str | os.PathLike, *, image_root_url: str,
                        class_names: list[str], top: int | None = None) -> dict[str, Path]:
    """Write ``tasks.json`` and ``labeling_config.xml`` into ``out_dir``; return their paths.

    ``table`` has one row per sample to review with ``id, label, score, suggested_label`` (class
    names). ``top`` keeps only the highest-scored tasks.

    Raises
    ------
    ManifestError
        ``out_dir`` holds a ``tasks.json`` already, ``top`` < 1, or ``table`` lacks a column.
    """
    missing = [c for c in ("id", "label", "score", "suggested_label") if c not in table.columns]
    if missing:
        raise ManifestError(f"the table lacks column(s) {missing}; pass a session's next_batch().")
    if top is not None and top < 1:
        raise ManifestError(f"top must be at least 1; got {top}.")
    out = Path(out_dir)
    if (out / "tasks.json").exists():
        raise ManifestError(f"{out / 'tasks.json'} exists; export into a new folder (--out DIR).")
    kept = table.sort_values(["score", "id"], ascending=[False, True], kind="stable")
    if top is not None:
        kept = kept.head(top)
    n = len(kept)
    tasks = [{
        "data": {"image": image_root_url + quote(str(row.id)), "given_label": str(row.label)},
        "meta": {"id": str(row.id), "score": float(row.score)},
        "predictions": [{"model_version": "coreclean", "score": (n - k) / n, "result": [{
            "from_name": "label", "to_name": "image", "type": "choices",
            "value": {"choices": [str(row.suggested_label)]}}]}],
    } for k, row in enumerate(kept.itertuples(index=False))]
    out.mkdir(parents=True, exist_ok=True)
    config = out / "labeling_config.xml"
    atomic_write_text(config, labeling_config(class_names))
    atomic_write_text(out / "tasks.json", json.dumps(tasks, indent=1))
    return {"tasks": out / "tasks.json", "config": config}


def read_label_studio_export(path: str | os.PathLike, *, reviewer: str | None = None) -> pd.DataFrame:
    """Decisions (``id, action, new_label, reviewer``) from a Label Studio JSON export of our tasks.

    The latest non-cancelled annotation of a task counts; its reviewer is ``reviewer`` if given, else
    the annotation's ``completed_by`` (email or id) when present.

    Raises
    ------
    DecisionError
        The file cannot be read as JSON, is not a list of tasks, or a task lacks ``meta.id`` /
        ``data.given_label`` (export the tasks with ``coreclean session export --format label-studio``).
    """
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DecisionError(f"cannot read Label Studio export {path}: {err}; export the project as JSON.") from err
    if not isinstance(tasks, list):
        raise DecisionError(f"{path} is not a Label Studio JSON export (a list of tasks); export the project as JSON.")
    rows = []
    for task in tasks:
        sample_id = (task.get("meta") or {}).get("id") if isinstance(task, dict) else None
        given = (task.get("data") or {}).get("given_label") if isinstance(task, dict) else None
        if sample_id is None or given is None:
            raise DecisionError(f"a task in {path} lacks meta.id or data.given_label; review tasks written by "
                                "coreclean session export --format label-studio.")
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        chosen = [c for r in (done[-1].get("result") or []) if r.get("type") == "choices"
                  for c in (r.get("value") or {}).get("choices") or []] if done else []
        if not chosen:
            continue
        who = reviewer if reviewer is not None else _annotator(done[-1])
        new = str(chosen[0])
        rows.append((str(sample_id), "keep" if new == str(given) else "relabel", "" if new == str(given) else new, who))
    return pd.DataFrame(rows, columns=["id", "action", "new_label", "reviewer"])


def _annotator(annotation: dict[str, Any]) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return None if who is None else str(who)
