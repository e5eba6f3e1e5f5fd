"""What does the review page receive? The session's answers turned into JSON-ready values.

The session speaks pandas, numpy and dataclasses; the page reads JSON. These functions do the
translation, and decide what the page may learn: the batch goes out without file paths, a round's
result flattened to the numbers the page shows. :func:`sample_files` gives the server (never the
page) each sample's file and recorded hash, for the file guard and the thumbnailer.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["batch_records", "round_result", "jsonable", "sample_files"]

_BATCH_FIELDS = ("id", "class", "label", "suggested_label", "suggested_prob", "score", "position", "audit")


def batch_records(session: Any) -> list[dict[str, Any]]:
    """Return the open round's batch as the page needs it: no paths, one ``decision`` (or None) per row.

    ``decision`` is ``{"action", "new_label", "weight", "order"}``; ``order`` is the decision's id in
    the session file, so the page knows which decision an undo takes back (the highest).
    """
    records = []
    for row in jsonable(session.next_batch()):
        record = {name: row.get(name) for name in _BATCH_FIELDS}
        record["id"] = str(record["id"])
        action = row.get("action") or ""
        record["decision"] = None if not action else {
            "action": action, "new_label": row.get("new_label") or None, "weight": row.get("weight"),
            "order": row.get("decision_id")}
        records.append(record)
    return records


def round_result(result: Any) -> dict[str, Any]:
    """Flatten a :class:`coreclean.sessions.session.RoundResult` for the page (verdict summary, AUROC change)."""
    data = jsonable(result)
    verdict = data.pop("verdict", None) or {}
    change = data.pop("auroc_change", None)
    data["verdict"] = verdict.get("summary") if isinstance(verdict, dict) else verdict
    data["plateau"] = bool(verdict.get("plateau")) if isinstance(verdict, dict) else None
    data["auroc_change"], data["change_low"], data["change_high"] = (change if change else (None, None, None))
    return data


def jsonable(value: Any) -> Any:
    """Return ``value`` (DataFrames, numpy scalars and arrays, dataclasses, NaN, ...) as JSON-ready values.

    DataFrames become lists of row dicts; non-finite floats become None; anything unknown its ``str``.
    """
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return [jsonable(row) for row in value.to_dict(orient="records")]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if hasattr(value, "_asdict"):
        return jsonable(value._asdict())
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    elif hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def sample_files(session: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Return id -> recorded path and id -> recorded sha256 ("" where unknown) for the session's samples.

    The hashes come from the cache's sample table, used only when it lists exactly the session's
    samples and paths (otherwise the thumbnailer keys files by path, size and time).
    """
    from coreclean.embedding.cache import read_samples
    from coreclean.exceptions import CacheError

    ids = [str(sample_id) for sample_id in session.sample_ids]
    paths = dict(zip(ids, (str(path) for path in session.paths)))
    sha256: dict[str, str] = {}
    try:
        samples = read_samples(session.cache_dir, key=getattr(session, "cache_key", None))
    except (CacheError, AttributeError):
        samples = None
    if samples is not None and list(samples["id"]) == ids and list(samples["path"]) == list(paths.values()):
        sha256 = dict(zip(ids, samples["sha256"].astype(str)))
    return paths, sha256
