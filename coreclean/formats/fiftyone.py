"""Review in FiftyOne: a dataset with coreclean's suggestions out, the reviewers' labels and tags back as decisions.

:func:`export_fiftyone` writes a table of samples (typically every sample of a session) into a
persistent FiftyOne dataset, one sample per image file, keyed by file path: created when no dataset
of that name exists, else updated in place (other fields and the samples of other files are left
alone). Each sample gets

- ``coreclean_id``: the sample's id in the session;
- ``ground_truth``: ``Classification`` of its current label;
- ``coreclean_suggestion``: ``Classification`` of the suggested class, ``confidence`` = the
  classifier's probability of that class (coreclean scores are not probabilities: they are in
  ``coreclean_score``);
- ``coreclean_score``: the coreclean score (higher = more likely mislabelled);
- ``coreclean_decision``: its decision in force (keep, relabel, drop, downweight, skip), None when undecided;
- ``coreclean_weight``: its current weight (0 = dropped);
- the tag ``needs-review`` on the samples to review (e.g. the open round's batch), and on those of
  them already decided in the open round, the tag of their decision (``drop``, ``skip``,
  ``downweight``), so that reading the dataset back untouched gives the same decisions.

:func:`read_fiftyone_decisions` reads the reviewed samples back as a decisions frame (``id, action,
new_label, weight, reviewer``) for ``CleaningSession.apply``, for the samples of a table such as the
open round's batch: a ``drop`` or ``delete`` tag (on the sample or on its label) → drop; ``skip`` →
skip (unsure); ``downweight`` → downweight to its ``coreclean_weight`` (when in (0, 1), else the
default); otherwise the label in the chosen field: the given label → keep, another class → relabel to
it, no label → undecided.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from coreclean.exceptions import DecisionError, ManifestError

__all__ = ["NEEDS_REVIEW", "ACTION_TAGS", "export_fiftyone", "read_fiftyone_decisions", "open_app_code"]

NEEDS_REVIEW = "needs-review"
"""The tag on the samples to review."""

ACTION_TAGS = {"drop": "drop", "delete": "drop", "skip": "skip", "downweight": "downweight"}
"""Sample (or label) tags a reviewer sets in FiftyOne, and the decision each one stands for."""

EXPORT_COLUMNS = ("id", "path", "label", "suggested_label", "suggested_prob", "score", "action", "weight", "review")


def _import_fiftyone() -> Any:
    try:
        import fiftyone
    except ImportError as err:
        raise ImportError("FiftyOne hand-offs need the fiftyone package: pip install 'coreclean[fiftyone]'") from err
    return fiftyone


def open_app_code(dataset_name: str) -> str:
    """Two lines of Python that open ``dataset_name`` in the FiftyOne App (and keep it open)."""
    return f"import fiftyone as fo\nfo.launch_app(fo.load_dataset({dataset_name!r})).wait()"


def export_fiftyone(table: pd.DataFrame, dataset_name: str) -> Any:
    """Write ``table``'s samples into the persistent FiftyOne dataset ``dataset_name``; return the dataset.

    ``table`` has one row per sample with ``id, path`` (the image file, absolute), ``label``,
    ``suggested_label`` (class names), ``suggested_prob``, ``score``, ``action`` (the decision in
    force, empty when none), ``weight`` and ``review`` (True: tag ``needs-review``; the tag is taken
    off every other sample of the dataset). Re-exporting overwrites these fields and tags with the
    table's values.

    Raises
    ------
    ManifestError
        ``table`` lacks a column or two of its samples share a file (FiftyOne keys samples by file).
    ImportError
        fiftyone is not installed (the message names the install command).
    """
    missing = [c for c in EXPORT_COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(f"the table lacks column(s) {missing}; pass scored_session_table(session).")
    # FiftyOne stores each file path absolute with ~ expanded: the same keys here
    table = table.assign(path=[os.path.abspath(os.path.expanduser(str(p))) for p in table["path"]])
    shared = table["path"][table["path"].duplicated()]
    if len(shared):
        raise ManifestError(f"{len(shared)} file(s) belong to several samples (first: {shared.iloc[0]}); FiftyOne "
                            "keeps one sample per file, so this dataset cannot be exported to it.")
    fo = _import_fiftyone()
    dataset = fo.load_dataset(dataset_name) if fo.dataset_exists(dataset_name) else fo.Dataset(dataset_name)
    schema = dataset.get_field_schema()
    clash = [name for name in ("ground_truth", "coreclean_suggestion")
             if name in schema and not _is_classification(fo, schema[name])]
    if clash:
        raise ManifestError(f"FiftyOne dataset {dataset_name!r} has field(s) {clash} that are not Classifications; "
                            "export into another dataset (--dataset-name NAME).")
    dataset.persistent = True
    for name, kind in (("coreclean_id", fo.StringField), ("coreclean_score", fo.FloatField),
                       ("coreclean_decision", fo.StringField), ("coreclean_weight", fo.FloatField)):
        if not dataset.has_sample_field(name):  # declared: a column of Nones gives FiftyOne no type to infer
            dataset.add_sample_field(name, kind)
    paths = table["path"].tolist()
    present = set(dataset.values("filepath")) if len(dataset) else set()
    new = [fo.Sample(filepath=path) for path in paths if path not in present]
    if new:
        dataset.add_samples(new, progress=False)

    def by_path(values) -> dict[str, Any]:
        return dict(zip(paths, values))

    rows = list(table.itertuples(index=False))
    dataset.set_values("coreclean_id", by_path(str(r.id) for r in rows), key_field="filepath")
    dataset.set_values("ground_truth", by_path(fo.Classification(label=str(r.label)) for r in rows),
                       key_field="filepath")
    dataset.set_values("coreclean_suggestion", by_path(
        fo.Classification(label=str(r.suggested_label), confidence=float(r.suggested_prob)) for r in rows),
        key_field="filepath")
    dataset.set_values("coreclean_score", by_path(float(r.score) for r in rows), key_field="filepath")
    dataset.set_values("coreclean_decision", by_path(str(r.action) or None for r in rows), key_field="filepath")
    dataset.set_values("coreclean_weight", by_path(float(r.weight) for r in rows), key_field="filepath")
    dataset.untag_samples(NEEDS_REVIEW)
    review = table[table["review"].astype(bool)]
    to_review = dataset.select_by("filepath", review["path"].tolist())
    to_review.untag_samples(list(ACTION_TAGS))
    to_review.tag_samples(NEEDS_REVIEW)
    for action in ("drop", "skip", "downweight"):
        decided = review.loc[review["action"] == action, "path"].tolist()
        if decided:
            dataset.select_by("filepath", decided).tag_samples(action)
    return dataset


def read_fiftyone_decisions(dataset_name: str, table: pd.DataFrame, *, class_names: list[str],
                            field: str = "ground_truth") -> pd.DataFrame:
    """Decisions (``id, action, new_label, weight, reviewer``) on ``table``'s samples from a reviewed dataset.

    ``table`` names the samples to read (``id``, matched to ``coreclean_id``) and their given
    ``label`` (e.g. the open round's batch); samples absent from the dataset, and those with neither
    an action tag nor a label in ``field``, are left out (undecided). ``reviewer`` is left empty.

    Raises
    ------
    DecisionError
        No dataset of that name, it holds none of ``table``'s samples, ``field`` is not a
        ``Classification`` or text field of it, a sample carries two different action tags, or a
        label in ``field`` is not one of ``class_names`` (every problem in one line; nothing is returned).
    ImportError
        fiftyone is not installed (the message names the install command).
    """
    fo = _import_fiftyone()
    if not fo.dataset_exists(dataset_name):
        raise DecisionError(f"no FiftyOne dataset named {dataset_name!r}; write one with "
                            "coreclean session export --format fiftyone.")
    dataset = fo.load_dataset(dataset_name)
    label_path = _label_path(fo, dataset, field)
    ids = table["id"].astype(str).tolist()
    view = dataset.select_by("coreclean_id", ids) if dataset.has_sample_field("coreclean_id") else dataset.limit(0)
    if not len(view):
        raise DecisionError(f"FiftyOne dataset {dataset_name!r} holds none of the {len(ids)} sample(s) to review; "
                            "export the open round again with coreclean session export --format fiftyone.")
    given = dict(zip(ids, table["label"].astype(str)))
    tag_path = f"{field}.tags" if label_path != field else None  # a Classification's own (label) tags
    sample_ids, labels, tags, weights = view.values(["coreclean_id", label_path, "tags", "coreclean_weight"])
    label_tags = view.values(tag_path) if tag_path else [None] * len(sample_ids)
    known = set(map(str, class_names))
    rows, problems = [], []
    for sample_id, label, sample_tags, label_tag, weight in zip(sample_ids, labels, tags, label_tags, weights):
        actions = {ACTION_TAGS[t] for t in [*(sample_tags or []), *(label_tag or [])] if t in ACTION_TAGS}
        if len(actions) > 1:
            problems.append(f"{sample_id!r} is tagged {sorted(actions)} (keep one)")
        elif actions:
            action = actions.pop()
            kept_weight = float(weight) if action == "downweight" and weight is not None and 0 < weight < 1 else None
            rows.append((sample_id, action, "", kept_weight, None))
        elif label is None or str(label).strip() == "":
            continue
        elif str(label) not in known:
            problems.append(f"{sample_id!r} is labelled {str(label)!r}")
        else:
            same = str(label) == given[sample_id]
            rows.append((sample_id, "keep" if same else "relabel", "" if same else str(label), None, None))
    if problems:
        raise DecisionError(f"FiftyOne dataset {dataset_name!r}, field {field!r}: " + "; ".join(problems)
                            + f"; labels must be one of {sorted(known)}. Fix them in FiftyOne and apply again; "
                            "nothing was recorded.")
    return pd.DataFrame(rows, columns=["id", "action", "new_label", "weight", "reviewer"])


def _label_path(fo: Any, dataset: Any, field: str) -> str:
    """Where ``field``'s class name is: ``field.label`` for a Classification, ``field`` for text."""
    schema = dataset.get_field_schema()
    kind = schema.get(field)
    if _is_classification(fo, kind):
        return f"{field}.label"
    if isinstance(kind, fo.StringField):
        return field
    usable = sorted(name for name, f in schema.items() if isinstance(f, fo.StringField) or _is_classification(fo, f))
    raise DecisionError(f"field {field!r} of FiftyOne dataset {dataset.name!r} is "
                        + ("missing" if kind is None else f"a {type(kind).__name__}, not a Classification")
                        + f"; pass --field one of {usable}.")


def _is_classification(fo: Any, kind: Any) -> bool:
    return isinstance(kind, fo.EmbeddedDocumentField) and issubclass(kind.document_type, fo.Classification)
