"""Can a session start on this cache with these settings? Validation before anything is written."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coreclean._internal.validation import check_pred_probs
from coreclean.exceptions import CacheError, InputValidationError, SessionError
from coreclean.sessions.batches import ALLOCATIONS
from coreclean.sessions.decisions import resolve_class

__all__ = ["plan_session", "bind_cache", "BoundCache"]


@dataclass(frozen=True)
class BoundCache:
    """The parts of an embedding set a session works on."""

    features: np.ndarray
    sample_ids: np.ndarray
    paths: np.ndarray
    class_names: list[str]


def bind_cache(cache_dir: Path, meta: dict[str, Any], session_path: str) -> BoundCache:
    """Load the embedding set a session was started on from ``cache_dir``, checking it is the same one.

    Raises
    ------
    SessionError
        The cache lacks the set, or its fingerprint differs (samples or labels changed since).
    """
    from coreclean.embedding.cache import load_embeddings, read_cache_info, read_samples

    key = meta["cache_key"]
    try:
        info = read_cache_info(cache_dir, key=key)
    except CacheError as err:
        raise SessionError(f"session {session_path} was started on embedding set {key!r} of "
                           f"{meta['cache_dir']}, which {cache_dir} does not hold: {err}") from err
    if info.get("fingerprint") != meta["fingerprint"]:
        raise SessionError(
            f"cache {cache_dir} (embedding set {key}) has fingerprint {str(info.get('fingerprint'))[:12]}..., but "
            f"session {session_path} was started on {meta['fingerprint'][:12]}...: the samples or labels "
            "changed since. Start a new session on this cache (`coreclean session start`)."
        )
    embeddings = load_embeddings(cache_dir, key=key)
    return BoundCache(features=embeddings.features, sample_ids=np.asarray(embeddings.sample_ids, dtype=object),
                      paths=read_samples(cache_dir, key=key)["path"].to_numpy(dtype=object),
                      class_names=list(embeddings.class_names))


def plan_session(cache_dir: str | os.PathLike, path: str | os.PathLike, *, classes: list[str], against: str | None,
                 batch_size: int, allocation: str, method: str, evaluate: bool, n_boot: int,
                 labels: np.ndarray | None, key: str | None, ranker_params: dict[str, Any] | None,
                 random_state: int, pred_probs: np.ndarray | None = None, audit: int = 0
                 ) -> tuple[dict[str, Any], list[str], np.ndarray, np.ndarray | None]:
    """Check a new session's settings against the cache: ``(meta, sample_ids, start_labels, pred_probs)``.

    See :meth:`coreclean.sessions.session.CleaningSession.start` for the parameters. Nothing is
    written.

    Raises
    ------
    SessionError
        Bad batch size, audit count, allocation or method; ``path`` exists; unreadable cache; unknown, repeated or
        empty class; a partner class among the classes; labels of the wrong shape or range;
        ``pred_probs`` not (samples x classes) probabilities (see :func:`check_pred_probs`).
    """
    from coreclean.embedding.cache import load_embeddings, read_cache_info
    from coreclean.scoring.methods import REGISTRY

    if int(batch_size) < 1:
        raise SessionError(f"batch_size must be >= 1; got {batch_size}.")
    if isinstance(audit, bool) or not isinstance(audit, (int, np.integer)) or audit < 0:
        raise SessionError(f"audit must be a whole number of samples >= 0 per class per round; got {audit!r}.")
    if allocation not in ALLOCATIONS:
        raise SessionError(f"allocation must be one of {list(ALLOCATIONS)}; got {allocation!r}.")
    if method not in REGISTRY:
        raise SessionError(f"unknown method {method!r}; choose one of {sorted(REGISTRY)}.")
    if str(path) != ":memory:" and Path(path).exists():
        raise SessionError(f"{path} already exists; go on with it (`coreclean session next --session {path}`) "
                           "or choose a new file (--session FILE).")
    try:
        info = read_cache_info(cache_dir, key=key)
        embeddings = load_embeddings(cache_dir, key=info["key"])
    except CacheError as err:
        raise SessionError(str(err)) from err
    class_names = list(embeddings.class_names)
    if not classes:
        raise SessionError("name at least one class to clean (--class NAME).")
    class_list = [resolve_class(name, class_names) for name in classes]
    if len(set(class_list)) != len(class_list):
        raise SessionError(f"classes {list(classes)} name a class twice.")
    against_index = resolve_class(against, class_names) if against is not None else None
    if against_index is not None and against_index in class_list:
        raise SessionError(f"--against {against!r} is one of the classes being cleaned; pick another partner.")
    start_labels = embeddings.labels if labels is None else np.asarray(labels, dtype=np.int64)
    if start_labels.shape != embeddings.labels.shape or start_labels.min() < 0 or start_labels.max() >= len(class_names):
        raise SessionError(f"labels must be {embeddings.labels.size} class indices in 0..{len(class_names) - 1}.")
    counts = np.bincount(start_labels, minlength=len(class_names))
    empty = [class_names[c] for c in class_list if counts[c] == 0]
    if empty:
        raise SessionError(f"class(es) {empty} have no samples in {cache_dir}; nothing to clean there.")
    if pred_probs is not None:
        try:
            pred_probs = check_pred_probs(pred_probs, start_labels.size, len(class_names))
        except InputValidationError as err:
            raise SessionError(f"{err} (rows: the cache's samples in order; columns: its classes {class_names}).") from err
    meta = {
        "cache_dir": str(Path(cache_dir).resolve()), "cache_key": info["key"], "fingerprint": info["fingerprint"],
        "class_names": class_names, "classes": [class_names[c] for c in class_list],
        "against": class_names[against_index] if against_index is not None else None,
        "batch_size": int(batch_size), "allocation": allocation, "method": method, "evaluate": bool(evaluate),
        "n_boot": int(n_boot),
        "ranker_params": dict(ranker_params or {}), "random_state": int(random_state), "created_at": time.time(),
        "pred_probs": pred_probs is not None, "audit": int(audit),
    }
    return meta, [str(s) for s in embeddings.sample_ids], start_labels, pred_probs
