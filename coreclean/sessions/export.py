"""What did a cleaning session change, and how do I carry it back to my dataset?

:func:`export_session` writes, into one folder:

- ``labels.csv``: every sample's cleaned label and weight (``id, path, label, original_label,
  weight, changed, action``);
- ``label_patch.csv``: only the samples whose label or weight changed (``id, path, old_label,
  new_label, weight, action``), small enough to review in a pull request;
- ``decisions.csv``: the complete audit trail, undo records and revoked decisions included;
- ``rounds.csv``: one row per closed round.

:func:`apply_label_patch` re-applies a patch to the original dataset (a CSV manifest or a
folder-per-class tree) and returns a manifest table ``path, label, id[, weight]`` with the cleaned
labels; :func:`write_manifest` writes such a table as a CSV that ``coreclean embed`` reads back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coreclean._internal.atomic import atomic_write_text
from coreclean.exceptions import ManifestError

__all__ = ["session_table", "scored_session_table", "ranker_arrays", "export_session", "apply_label_patch", "read_label_patch", "write_manifest", "PATCH_COLUMNS"]

logger = logging.getLogger(__name__)

PATCH_COLUMNS = ["id", "path", "old_label", "new_label", "weight", "action"]


def session_table(session: Any) -> pd.DataFrame:
    """Every sample of a session with its cleaned label and weight (the rows of ``labels.csv``).

    ``session`` is a :class:`~coreclean.sessions.session.CleaningSession` (its public attributes
    only). Columns ``id, path, label, original_label, weight, changed, action`` (``action``: the
    sample's live decision, empty when undecided).
    """
    names = np.asarray(session.class_names, dtype=object)
    labels, weights = session.labels, session.weights
    original, original_weights = session.start_labels, session.start_weights
    live = session.live_decisions()
    last_action = np.full(labels.size, "", dtype=object)
    last_action[live["idx"].to_numpy(np.int64)] = live["action"].to_numpy(dtype=object)
    return pd.DataFrame({
        "id": session.sample_ids.astype(str), "path": session.paths.astype(str), "label": names[labels],
        "original_label": names[original], "weight": weights,
        "changed": (labels != original) | (weights != original_weights), "action": last_action,
    })


def scored_session_table(session: Any) -> pd.DataFrame:
    """:func:`session_table` plus what a reviewer sees: each sample's score, suggestion and place in the open round.

    Added columns: ``score`` (what batches are ranked by: the coreclean score, or the probability of
    the partner class in a session ``against`` one), ``suggested_label`` (class name),
    ``suggested_prob``, ``review`` (True for the open round's batch, which is drawn and stored if it
    was not yet) and ``given_label`` (the label at the start of the open round: what a decision on a
    batch sample is judged against). Batch samples keep the score and suggestion they were shown
    with; the others get those of the ranker batches come from (one ranking).
    """
    table = session_table(session)
    batch = session.next_batch()
    ranker = session.ranker()
    names = np.asarray(session.class_names, dtype=object)
    table["score"] = (ranker.scores_ if session.against is None
                      else ranker.probs_[:, session.class_names.index(session.against)].astype(np.float64))
    table["suggested_label"] = names[ranker.suggested_labels_]
    table["suggested_prob"] = np.asarray(ranker.suggested_probs_, dtype=np.float64)
    table["given_label"] = table["label"]
    table["review"] = False
    rows = batch["index"].to_numpy(np.int64)
    for column, source in (("score", "score"), ("suggested_label", "suggested_label"),
                           ("suggested_prob", "suggested_prob"), ("given_label", "label")):
        table.loc[rows, column] = batch[source].to_numpy()
    table.loc[rows, "review"] = True
    return table


def export_session(table: pd.DataFrame, decisions: pd.DataFrame, rounds: pd.DataFrame,
                   out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write a session's cleaned labels, label patch, decisions and rounds into ``out_dir``.

    Parameters
    ----------
    table : DataFrame
        :func:`session_table`'s rows.
    decisions, rounds : DataFrame
        The session's audit trail and rounds.
    out_dir : str or os.PathLike
        Created if needed; files are written atomically (temporary name, then rename).

    Returns
    -------
    dict of str to Path
        ``labels``, ``patch``, ``decisions``, ``rounds``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    changed = table["changed"].to_numpy(bool)
    patch = table.loc[changed, ["id", "path", "original_label", "label", "weight", "action"]]
    patch = patch.rename(columns={"original_label": "old_label", "label": "new_label"})
    paths = {"labels": out_dir / "labels.csv", "patch": out_dir / "label_patch.csv",
             "decisions": out_dir / "decisions.csv", "rounds": out_dir / "rounds.csv"}
    atomic_write_text(paths["labels"], table.to_csv(index=False))
    atomic_write_text(paths["patch"], patch[PATCH_COLUMNS].to_csv(index=False))
    atomic_write_text(paths["decisions"], decisions.to_csv(index=False))
    atomic_write_text(paths["rounds"], rounds.to_csv(index=False))
    logger.debug("exported %d changed of %d samples to %s", int(changed.sum()), len(table), out_dir)
    return paths


def read_label_patch(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``label_patch.csv`` written by :func:`export_session`.

    Raises
    ------
    ManifestError
        If it cannot be read or lacks the patch columns.
    """
    try:
        patch = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ManifestError(f"cannot read label patch {path}: {err}") from err
    missing = [c for c in PATCH_COLUMNS if c not in patch.columns]
    if missing:
        raise ManifestError(f"label patch {path} lacks column(s) {missing}; expected {PATCH_COLUMNS}.")
    patch["weight"] = patch["weight"].astype(float)
    return patch


def apply_label_patch(
    source: str | os.PathLike,
    patch: pd.DataFrame | str | os.PathLike,
    *,
    drop_zero_weight: bool = True,
) -> pd.DataFrame:
    """Apply a label patch to the original dataset and return the cleaned manifest table.

    Parameters
    ----------
    source : str or os.PathLike
        What was embedded: a CSV manifest (``path,label[,id]``) or a folder-per-class tree.
    patch : DataFrame or path to ``label_patch.csv``
    drop_zero_weight : bool
        Leave out samples dropped in the session (weight 0); otherwise keep them with weight 0.

    Returns
    -------
    pandas.DataFrame
        ``path, label, id`` (paths as in the CSV, or absolute for a folder) plus ``weight`` when
        any kept weight differs from 1, in the source's order.

    Raises
    ------
    ManifestError
        If a patched id is not in ``source``, or a sample's current label there is not the patch's
        ``old_label`` (the dataset changed since the session).
    """
    from coreclean.embedding.manifest import read_manifest

    patch = read_label_patch(patch) if not isinstance(patch, pd.DataFrame) else patch
    source = Path(source)
    if source.is_dir():
        manifest = read_manifest(source)
        frame = pd.DataFrame({"path": [str(p) for p in manifest.paths],
                              "label": [manifest.class_names[k] for k in manifest.labels],
                              "id": manifest.sample_ids})
    else:
        try:
            frame = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise ManifestError(f"cannot read manifest {source}: {err}") from err
        if "id" not in frame.columns:
            manifest = read_manifest(source, check_files=False)
            ids = {row: sid for row, sid in zip(manifest.rows.tolist(), manifest.sample_ids)}
            frame["id"] = [ids.get(row, "") for row in range(len(frame))]
    frame = frame.copy()
    frame["weight"] = 1.0
    position = {sid: i for i, sid in enumerate(frame["id"].tolist())}
    problems = []
    for row in patch.itertuples(index=False):
        where = position.get(str(row.id))
        if where is None:
            problems.append(f"id {row.id!r} is not in {source}")
            continue
        if str(frame.at[where, "label"]) != str(row.old_label):
            problems.append(f"{row.id!r} is labelled {frame.at[where, 'label']!r} in {source}, not {row.old_label!r}")
            continue
        frame.at[where, "label"] = str(row.new_label)
        frame.at[where, "weight"] = float(row.weight)
    if problems:
        raise ManifestError(f"label patch does not fit {source} ({len(problems)} problem(s)): "
                            + "; ".join(problems[:5]))
    if drop_zero_weight:
        frame = frame[frame["weight"] > 0]
    if (frame["weight"] == 1.0).all():
        frame = frame.drop(columns="weight")
    return frame.reset_index(drop=True)


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a manifest table (``path, label[, id, weight]``) as a UTF-8 CSV, atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, frame.to_csv(index=False))
    return path


def ranker_arrays(session: Any) -> dict[str, np.ndarray]:
    """The session's ranker under its live decisions, as arrays: ``ids``, ``labels`` (class index it
    scored against), ``pred_probs``, ``neighbor_indices`` and ``neighbor_similarities``.

    Fits the ranker as ``next_batch`` does (one ranking).
    """
    ranker = session.ranker()
    indices, similarities = ranker.signals_.neighbors
    return {"ids": session.sample_ids.astype(str), "labels": np.asarray(ranker.labels_),
            "pred_probs": np.asarray(ranker.probs_), "neighbor_indices": indices,
            "neighbor_similarities": similarities}
