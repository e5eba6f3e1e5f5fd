"""How do I clean a class, batch by batch, and know when to stop? :class:`CleaningSession`.

A session cleans one or more classes of one embedding set. Each *round* shows the top
``batch_size`` not-yet-decided samples of every class being cleaned (most suspicious first), takes
the reviewer's decisions (keep / relabel / drop / downweight / skip), and when closed applies them
to the ranker (:class:`coreclean.scoring.ranker.LabelIssueRanker`: ``relabel`` / ``drop`` /
``set_weight`` / ``verify``, then an incremental ``rescore``), measures a cross-validated AUROC on
fixed folds (:mod:`coreclean.evaluation.held_out`) and gives a plateau verdict.

Everything lives in one SQLite file (:mod:`coreclean.sessions.store`): each decision is its own
committed transaction, so a killed process loses nothing decided. The ranker is not stored; a
reopened session refits it once from the cache and the session's labels and weights.

Typical use (a notebook, the review page of issue #5, or the benchmark's simulated reviewer)::

    session = CleaningSession.start("cache/", "cats.session", classes=["cat"], batch_size=50)
    batch = session.next_batch()                  # DataFrame: id, path, label, suggested_label, score, ...
    session.decide(batch.id[0], "relabel", new_label="dog")
    session.decide(batch.id[1], "keep")
    result = session.close_round()                # RoundResult; result.verdict.summary says whether to stop
    session.export("cleaned/")
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coreclean.evaluation.held_out import FoldedEvaluator
from coreclean.sessions.stopping import Verdict, plateau_verdict
from coreclean.evaluation.auroc import bootstrap_auroc, paired_auroc_change
from coreclean._internal.threads import limit_threads
from coreclean.scoring.linear.folds import make_folds
from coreclean.exceptions import CacheError, DecisionError, SessionError
from coreclean.sessions.store import ACTIONS, HIT_ACTIONS, SessionStore

__all__ = ["CleaningSession", "RoundResult", "BATCH_COLUMNS", "DECISION_COLUMNS", "DEFAULT_DOWNWEIGHT"]

logger = logging.getLogger(__name__)

BATCH_COLUMNS = ["id", "path", "label", "suggested_label", "suggested_prob", "score", "action", "new_label"]
"""Columns of the headless review CSV (the reviewer fills ``action`` and, for relabel, ``new_label``)."""

DECISION_COLUMNS = ("id", "action", "new_label", "weight", "reviewer")
"""Columns :meth:`CleaningSession.apply` reads (only ``id`` and ``action`` are required)."""

DEFAULT_DOWNWEIGHT = 0.5
"""Weight given by ``downweight`` when no weight is named."""


@dataclass(frozen=True)
class RoundResult:
    """What closing a round measured.

    Attributes
    ----------
    round : int
    n_reviewed : int
        Decisions of the round, skips excluded.
    n_errors_found : int
        Relabels, drops and down-weights among them.
    n_skipped : int
    hit_rate : float
        ``n_errors_found / n_reviewed`` (NaN when nothing was reviewed).
    auroc, auroc_low, auroc_high : float
        Cross-validated macro AUROC on the current labels and its bootstrap interval (NaN when not evaluated).
    auroc_change : tuple of float or None
        ``(change, low, high)`` against the previous round, paired bootstrap on the same folds and samples.
    errors_left : float
        Estimated label errors left among the unreviewed samples of the classes being cleaned.
    samples_left : int
    base_rate : float
        ``errors_left / samples_left`` after the round: the hit rate random review would get next.
        (The verdict compares the round's hit rate with the base rate at the round's start.)
    verdict : Verdict
        The plateau call and its evidence.
    update_seconds, eval_seconds : float
        Wall time of the ranker update and of the AUROC evaluation.
    """

    round: int
    n_reviewed: int
    n_errors_found: int
    n_skipped: int
    hit_rate: float
    auroc: float
    auroc_low: float
    auroc_high: float
    auroc_change: tuple[float, float, float] | None
    errors_left: float
    samples_left: int
    base_rate: float
    verdict: Verdict
    update_seconds: float
    eval_seconds: float


class CleaningSession:
    """A resumable, audited cleaning session over one embedding set; create with :meth:`start` or :meth:`open`.

    Attributes (read-only properties)
    ---------------------------------
    path : str
        The session file.
    cache_dir : Path
        The cache in use; ``cache_key`` names its embedding set.
    class_names : list of str
        All classes of the embedding set.
    classes : list of str
        The classes being cleaned.
    against : str or None
        With a partner class, each class's samples are ranked by their probability of being it.
    batch_size : int
        Samples per class per round.
    round : int
        The open round (1 = the first; round 0 is the baseline measured at start).
    sample_ids, paths : ndarray of str
    labels : ndarray of int64
        Current labels, every decision so far included (open round too).
    weights : ndarray of float64
        Current weights (0 = dropped).
    """

    # ------------------------------------------------------------------ construction
    def __init__(self, store: SessionStore, *, cache_dir: str | os.PathLike | None = None,
                 n_threads: int | None = None) -> None:
        """Use :meth:`start` or :meth:`open`; this wraps an already opened store."""
        self._store = store
        self.n_threads = n_threads
        self._meta = store.meta()
        cache_dir = Path(cache_dir) if cache_dir is not None else Path(self._meta["cache_dir"])
        self._load_cache(cache_dir)
        snapshot = store.snapshot()
        if len(snapshot) != self._sample_ids.size or not np.array_equal(snapshot["sample_id"].to_numpy(str),
                                                                          self._sample_ids.astype(str)):
            raise SessionError(f"session {store.path} and cache {cache_dir} list different samples; "
                               "open it with the cache it was started on.")
        self._start_labels = snapshot["label"].to_numpy(np.int64)
        self._start_weights = snapshot["weight"].to_numpy(np.float64)
        self._ranker = None
        self._evaluator = None

    def _load_cache(self, cache_dir: Path) -> None:
        from coreclean.embedding.cache import load_embeddings, read_cache_info, read_samples

        key = self._meta["cache_key"]
        try:
            info = read_cache_info(cache_dir, key=key)
        except CacheError as err:
            raise SessionError(f"session {self._store.path} was started on embedding set {key!r} of "
                               f"{self._meta['cache_dir']}, which {cache_dir} does not hold: {err}") from err
        if info.get("fingerprint") != self._meta["fingerprint"]:
            raise SessionError(
                f"cache {cache_dir} (embedding set {key}) has fingerprint {str(info.get('fingerprint'))[:12]}..., but "
                f"session {self._store.path} was started on {self._meta['fingerprint'][:12]}...: the samples or labels "
                "changed since. Start a new session on this cache."
            )
        self.cache_dir = cache_dir
        embeddings = load_embeddings(cache_dir, key=key)
        self._features = embeddings.features
        self._sample_ids = np.asarray(embeddings.sample_ids, dtype=object)
        self._paths = read_samples(cache_dir, key=key)["path"].to_numpy(dtype=object)
        self._class_names = list(embeddings.class_names)
        self._id_index = {str(sid): i for i, sid in enumerate(self._sample_ids)}

    @classmethod
    def start(
        cls,
        cache_dir: str | os.PathLike,
        path: str | os.PathLike,
        *,
        classes: list[str],
        against: str | None = None,
        batch_size: int = 50,
        method: str = "coreclean",
        evaluate: bool = True,
        eval_C: float = 0.01,
        n_folds: int = 5,
        n_boot: int = 200,
        labels: np.ndarray | None = None,
        key: str | None = None,
        ranker_params: dict[str, Any] | None = None,
        random_state: int = 0,
        n_threads: int | None = None,
    ) -> "CleaningSession":
        """Start a session in a new file ``path`` on the embedding set in ``cache_dir``.

        Parameters
        ----------
        cache_dir : str or os.PathLike
            A cache written by ``coreclean embed`` (the most recent embedding set, or ``key``).
        path : str or os.PathLike
            The new session file (``":memory:"``: nothing on disk, for simulations).
        classes : list of str
            Class names to clean; each round shows ``batch_size`` samples of each.
        against : str, optional
            A partner class: rank each class's samples by their probability of being ``against``.
        batch_size : int
            Samples per class per round (the P1 protocol: 3 classes x 33).
        method : str
            A ranker of :data:`coreclean.scoring.methods.REGISTRY` (``"random"`` for a baseline).
        evaluate : bool
            Measure the cross-validated AUROC at every round close (turn off to save time).
        eval_C, n_folds, n_boot : float, int, int
            The AUROC evaluation: fixed C on standardised features, fixed folds, bootstrap draws.
        labels : ndarray of shape (n_samples,), optional
            Start from these label indices instead of the cache's (e.g. a benchmark's noisy labels).
        key : str, optional
            Embedding set key (default: the most recent in ``cache_dir``).
        ranker_params : dict, optional
            Extra :class:`LabelIssueRanker` parameters (``n_folds``, ``C``, ...).
        random_state : int
        n_threads : int, optional
            Cap OpenMP/BLAS threads during fits (1 is much faster on a busy machine; see
            :func:`coreclean._internal.threads.limit_threads`). Not stored: pass it again to :meth:`open`.

        Returns
        -------
        CleaningSession

        Raises
        ------
        SessionError
            Unknown or empty class, ``path`` already holding a session, unreadable cache.
        """
        from coreclean.embedding.cache import load_embeddings, read_cache_info
        from coreclean.scoring.methods import REGISTRY

        if int(batch_size) < 1:
            raise SessionError(f"batch_size must be >= 1; got {batch_size}.")
        if method not in REGISTRY:
            raise SessionError(f"unknown method {method!r}; choose one of {sorted(REGISTRY)}.")
        if str(path) != ":memory:" and Path(path).exists():
            raise SessionError(f"{path} already exists; open it with CleaningSession.open / `coreclean session` "
                               "commands, or choose a new file.")
        try:
            info = read_cache_info(cache_dir, key=key)
            embeddings = load_embeddings(cache_dir, key=info["key"])
        except CacheError as err:
            raise SessionError(str(err)) from err
        class_names = list(embeddings.class_names)
        if not classes:
            raise SessionError("name at least one class to clean (--class NAME).")
        class_list = [_resolve_class(name, class_names) for name in classes]
        if len(set(class_list)) != len(class_list):
            raise SessionError(f"classes {list(classes)} name a class twice.")
        against_index = _resolve_class(against, class_names) if against is not None else None
        if against_index is not None and against_index in class_list:
            raise SessionError(f"--against {against!r} is one of the classes being cleaned; pick another partner.")
        start_labels = embeddings.labels if labels is None else np.asarray(labels, dtype=np.int64)
        if start_labels.shape != embeddings.labels.shape or start_labels.min() < 0 or start_labels.max() >= len(class_names):
            raise SessionError(f"labels must be {embeddings.labels.size} class indices in 0..{len(class_names) - 1}.")
        counts = np.bincount(start_labels, minlength=len(class_names))
        empty = [class_names[c] for c in class_list if counts[c] == 0]
        if empty:
            raise SessionError(f"class(es) {empty} have no samples in {cache_dir}; nothing to clean there.")
        meta = {
            "cache_dir": str(Path(cache_dir).resolve()), "cache_key": info["key"], "fingerprint": info["fingerprint"],
            "class_names": class_names, "classes": [class_names[c] for c in class_list],
            "against": class_names[against_index] if against_index is not None else None,
            "batch_size": int(batch_size), "method": method, "evaluate": bool(evaluate), "eval_C": float(eval_C),
            "n_folds": int(n_folds), "n_boot": int(n_boot), "ranker_params": dict(ranker_params or {}),
            "random_state": int(random_state), "created_at": time.time(),
        }
        store = SessionStore(path, create=True)
        try:
            store.initialize(meta, [str(s) for s in embeddings.sample_ids], start_labels,
                             np.ones(start_labels.size, dtype=np.float64))
            session = cls(store, cache_dir=cache_dir, n_threads=n_threads)
            session._close(0)  # round 0: the baseline
        except BaseException:
            store.close()
            raise
        return session

    @classmethod
    def open(cls, path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
             read_only: bool = False, n_threads: int | None = None) -> "CleaningSession":
        """Reopen the session in file ``path``.

        Parameters
        ----------
        path : str or os.PathLike
        cache_dir : str or os.PathLike, optional
            Where the cache is now (default: where it was at start). Its fingerprint must match.
        read_only : bool
            Open for reading only (status, export); writes raise :class:`SessionError`.
        n_threads : int, optional
            Cap OpenMP/BLAS threads during fits (see :meth:`start`).

        Raises
        ------
        SessionError
            Missing or foreign file, or a cache whose fingerprint differs from the session's.
        """
        store = SessionStore(path, read_only=read_only)
        try:
            return cls(store, cache_dir=cache_dir, n_threads=n_threads)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        """Close the session file. Everything is already saved."""
        self._store.close()

    def __enter__(self) -> "CleaningSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state
    @property
    def path(self) -> str:
        return self._store.path

    @property
    def cache_key(self) -> str:
        """The embedding set's key in ``cache_dir`` (pass to :func:`coreclean.embedding.cache.read_samples`)."""
        return str(self._meta["cache_key"])

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def classes(self) -> list[str]:
        return list(self._meta["classes"])

    @property
    def against(self) -> str | None:
        return self._meta["against"]

    @property
    def batch_size(self) -> int:
        return int(self._meta["batch_size"])

    @property
    def sample_ids(self) -> np.ndarray:
        return self._sample_ids.copy()

    @property
    def paths(self) -> np.ndarray:
        return self._paths.copy()

    @property
    def round(self) -> int:
        closed = self._store.closed_rounds()
        return int(closed["round"].max()) + 1 if len(closed) else 0

    @property
    def labels(self) -> np.ndarray:
        return self._state(self._store.live_decisions())[0]

    @property
    def weights(self) -> np.ndarray:
        return self._state(self._store.live_decisions())[1]

    def _class_indices(self) -> list[int]:
        return [self._class_names.index(name) for name in self._meta["classes"]]

    def _state(self, live: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Labels and weights after ``live`` decisions (in id order) on top of the start snapshot."""
        labels = self._start_labels.copy()
        weights = self._start_weights.copy()
        for row in live.itertuples(index=False):
            if row.action == "relabel":
                labels[row.idx] = int(row.new_label)
            elif row.action in ("drop", "downweight"):
                weights[row.idx] = float(row.weight)
        return labels, weights

    def _applied(self, live: pd.DataFrame) -> pd.DataFrame:
        """The live decisions of closed rounds: what the ranker has (or must have) seen."""
        return live[live["round"] < self.round]

    # ------------------------------------------------------------------ the ranker
    def _ranker_for(self, applied: pd.DataFrame):
        if self._ranker is not None:
            return self._ranker
        from coreclean.scoring.ranker import LabelIssueRanker

        labels, weights = self._state(applied)
        start = time.perf_counter()
        ranker = LabelIssueRanker(self._meta["method"], random_state=self._meta["random_state"],
                                  **self._meta["ranker_params"])
        reviewed = applied.loc[applied["action"].isin(["keep", "relabel", "downweight"]), "idx"].to_numpy(np.int64)
        with limit_threads(self.n_threads):
            ranker.fit(self._features, labels, weights, n_classes=len(self._class_names))
            if reviewed.size:
                ranker.verify(reviewed)
                ranker.rescore()
        logger.debug("fitted the %s ranker on %d samples in %.1f s", self._meta["method"], labels.size,
                    time.perf_counter() - start)
        self._ranker = ranker
        return ranker

    # ------------------------------------------------------------------ batches
    def next_batch(self) -> pd.DataFrame:
        """The open round's batch: top ``batch_size`` undecided samples of each class, most suspicious first.

        Idempotent: the batch is stored when first drawn, so calling again (or after a restart)
        returns the same samples, with each one's current decision.

        Returns
        -------
        pandas.DataFrame
            Columns ``round, position, index, id, path, class, label, suggested_label, suggested_prob,
            score, action, new_label, weight, decision_id`` (``action`` etc. are the live decision of
            this round, or empty). Labels are class names. Empty when nothing is left to review.
        """
        round_number = self.round
        stored = self._store.batch(round_number)
        if stored.empty:
            live = self._store.live_decisions()
            ranker = self._ranker_for(self._applied(live))
            decided = np.zeros(self._sample_ids.size, dtype=bool)
            decided[live["idx"].to_numpy(np.int64)] = True
            labels, weights = self._state(self._applied(live))
            rows = []
            against = self._class_names.index(self.against) if self.against is not None else None
            scores = ranker.scores_ if against is None else ranker.probs_[:, against].astype(np.float64)
            for class_index in self._class_indices():
                members = np.flatnonzero((labels == class_index) & (weights > 0) & ~decided)
                top = members[np.argsort(-scores[members], kind="stable")][: self.batch_size]
                offset = len(rows)
                rows.extend([(offset + k, int(i), class_index, float(scores[i]), int(ranker.suggested_labels_[i]),
                              float(ranker.suggested_probs_[i])) for k, i in enumerate(top)])
            if rows:
                self._store.add_batch(round_number, rows)
            stored = self._store.batch(round_number)
        return self._batch_frame(stored, round_number)

    def _batch_frame(self, stored: pd.DataFrame, round_number: int) -> pd.DataFrame:
        names = np.asarray(self._class_names, dtype=object)
        idx = stored["idx"].to_numpy(np.int64)
        live = self._store.live_decisions()
        live = live[live["round"] == round_number].set_index("idx")
        frame = pd.DataFrame({
            "round": round_number,
            "position": stored["position"].to_numpy(np.int64),
            "index": idx,
            "id": self._sample_ids[idx].astype(str),
            "path": self._paths[idx].astype(str),
            "class": names[stored["class_index"].to_numpy(np.int64)],
            "label": names[self._start_labels_before(round_number)[idx]],
            "suggested_label": names[stored["suggested_label"].to_numpy(np.int64)],
            "suggested_prob": stored["suggested_prob"].to_numpy(np.float64),
            "score": stored["score"].to_numpy(np.float64),
        })
        decided = [live.loc[i] if i in live.index else None for i in idx]
        frame["action"] = [d["action"] if d is not None else "" for d in decided]
        frame["new_label"] = [names[int(d["new_label"])] if d is not None and d["action"] == "relabel" else ""
                              for d in decided]
        frame["weight"] = [float(d["weight"]) if d is not None and d["weight"] is not None and not pd.isna(d["weight"])
                           else np.nan for d in decided]
        frame["decision_id"] = [int(d["id"]) if d is not None else pd.NA for d in decided]
        return frame

    def _start_labels_before(self, round_number: int) -> np.ndarray:
        live = self._store.live_decisions()
        return self._state(live[live["round"] < round_number])[0]

    def typical(self, class_name: str, n: int = 8) -> pd.DataFrame:
        """The ``n`` least suspicious (lowest-score) kept samples labelled ``class_name``: what the class looks like.

        Returns
        -------
        pandas.DataFrame
            Columns ``index, id, path, label, score``.
        """
        class_index = _resolve_class(class_name, self._class_names)
        live = self._store.live_decisions()
        ranker = self._ranker_for(self._applied(live))
        labels, weights = self._state(self._applied(live))
        members = np.flatnonzero((labels == class_index) & (weights > 0))
        chosen = members[np.argsort(ranker.scores_[members], kind="stable")][:n]
        return pd.DataFrame({"index": chosen, "id": self._sample_ids[chosen].astype(str),
                             "path": self._paths[chosen].astype(str), "label": self._class_names[class_index],
                             "score": ranker.scores_[chosen]})

    # ------------------------------------------------------------------ decisions
    def decide(self, sample_id: str, action: str, new_label: str | int | None = None, weight: float | None = None,
               reviewer: str | None = None) -> int:
        """Record one decision about ``sample_id`` in the open round, committed before returning.

        Parameters
        ----------
        sample_id : str
        action : {"keep", "relabel", "drop", "downweight", "skip"}
            ``skip`` = unsure (counted neither as a hit nor a miss).
        new_label : str or int, optional
            Required for ``relabel`` (a class name or index); not allowed otherwise.
        weight : float, optional
            For ``downweight``: the new weight in (0, 1] (default 0.5).
        reviewer : str, optional

        Returns
        -------
        int
            The decision's id (for the audit trail).

        Raises
        ------
        DecisionError
            Unknown id, action or label, or a sample already decided in a closed round.
        """
        frame = pd.DataFrame([{"id": sample_id, "action": action, "new_label": new_label, "weight": weight,
                               "reviewer": reviewer}])
        return self._record(frame)[0]

    def apply(self, decisions: pd.DataFrame | str | os.PathLike, *, reviewer: str | None = None) -> int:
        """Record many decisions at once, all or nothing: validated as a whole, written in one transaction.

        Parameters
        ----------
        decisions : DataFrame or path to a CSV
            Columns ``id, action`` and optionally ``new_label, weight, reviewer`` (extra columns, e.g.
            the batch CSV's ``path`` or ``score``, are ignored). Rows with an empty ``action`` are
            skipped as not yet decided.
        reviewer : str, optional
            Default reviewer for rows without one.

        Returns
        -------
        int
            Number of decisions recorded.

        Raises
        ------
        DecisionError
            Listing every problem (unknown ids or labels, duplicate or conflicting rows, ...); nothing
            was recorded.
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
        if frame.empty:
            return 0
        return len(self._record(frame[list(DECISION_COLUMNS)].reset_index(drop=True), first_line=2))

    def _record(self, frame: pd.DataFrame, *, first_line: int | None = None) -> list[int]:
        rows = self._validate(frame, first_line=first_line)
        return self._store.add_decisions(rows)

    def _validate(self, frame: pd.DataFrame, *, first_line: int | None) -> list[dict[str, Any]]:
        round_number = self.round
        live = self._store.live_decisions()
        earlier = set(live.loc[live["round"] < round_number, "idx"].astype(int))
        labels, _ = self._state(live)
        batch = self._store.batch(round_number).set_index("idx")
        problems: list[str] = []
        rows: list[dict[str, Any]] = []
        seen: dict[int, tuple] = {}
        for position, record in enumerate(frame.itertuples(index=False)):
            where = f"line {first_line + position}" if first_line is not None else f"decision {position + 1}"
            sample_id = str(record.id).strip() if not _blank(record.id) else ""
            action = str(record.action).strip().lower()
            idx = self._id_index.get(sample_id)
            if idx is None:
                problems.append(f"{where}: unknown sample id {sample_id!r}")
                continue
            if action not in ACTIONS:
                problems.append(f"{where}: unknown action {action!r} for {sample_id!r}; use one of {list(ACTIONS)}")
                continue
            new_label = None
            if not _blank(record.new_label):
                new_label = _label_index(record.new_label, self._class_names)
                if new_label is None:
                    problems.append(f"{where}: unknown label {record.new_label!r} for {sample_id!r}; known classes: "
                                    f"{_preview(self._class_names)}")
                    continue
            weight = None
            if not _blank(record.weight):
                try:
                    weight = float(record.weight)
                except (TypeError, ValueError):
                    problems.append(f"{where}: weight {record.weight!r} for {sample_id!r} is not a number")
                    continue
            if action == "relabel":
                if new_label is None:
                    problems.append(f"{where}: relabel of {sample_id!r} needs a new_label")
                    continue
                if new_label == labels[idx] and idx not in seen:
                    problems.append(f"{where}: relabel of {sample_id!r} to its current label "
                                    f"{self._class_names[new_label]!r}; use keep")
                    continue
            elif new_label is not None:
                problems.append(f"{where}: {action} of {sample_id!r} conflicts with new_label {record.new_label!r} "
                                "(only relabel takes one)")
                continue
            if action == "downweight":
                weight = DEFAULT_DOWNWEIGHT if weight is None else weight
                if not 0.0 < weight <= 1.0 or math.isnan(weight):
                    problems.append(f"{where}: downweight of {sample_id!r} needs a weight in (0, 1]; got {weight}")
                    continue
            elif action == "drop":
                if weight not in (None, 0.0):
                    problems.append(f"{where}: drop of {sample_id!r} sets weight 0; got weight {weight}")
                    continue
                weight = 0.0
            elif weight is not None:
                problems.append(f"{where}: {action} of {sample_id!r} takes no weight; got {weight}")
                continue
            if idx in earlier:
                problems.append(f"{where}: {sample_id!r} was decided in an earlier round; undo that round to change it")
                continue
            key = (action, new_label, weight)
            if idx in seen:
                kind = "duplicate" if seen[idx] == key else "conflicting"
                problems.append(f"{where}: {kind} decision for {sample_id!r} (it appears more than once)")
                continue
            seen[idx] = key
            score = float(batch.loc[idx, "score"]) if idx in batch.index else None
            reviewer = None if _blank(record.reviewer) else str(record.reviewer)
            rows.append({"round": round_number, "idx": idx, "action": action, "old_label": int(labels[idx]),
                         "new_label": new_label, "weight": weight, "reviewer": reviewer, "score": score})
        if problems:
            shown = "; ".join(problems[:10]) + (f"; ... and {len(problems) - 10} more" if len(problems) > 10 else "")
            raise DecisionError(f"{len(problems)} problem(s), nothing was applied: {shown}")
        return rows

    # ------------------------------------------------------------------ rounds
    def close_round(self, *, evaluate: bool | None = None) -> RoundResult:
        """Apply the open round's decisions, update the ranking, measure, and give the plateau verdict.

        Parameters
        ----------
        evaluate : bool, optional
            Measure the cross-validated AUROC (default: the session's setting).

        Returns
        -------
        RoundResult
        """
        return self._close(self.round, evaluate=evaluate)

    def _close(self, round_number: int, *, evaluate: bool | None = None) -> RoundResult:
        with limit_threads(self.n_threads):
            return self._close_round(round_number, evaluate=evaluate)

    def _close_round(self, round_number: int, *, evaluate: bool | None) -> RoundResult:
        self._store.check_writable()
        evaluate = self._meta["evaluate"] if evaluate is None else evaluate
        live = self._store.live_decisions()
        applied = live[live["round"] < round_number]
        ranker = self._ranker_for(applied)
        this_round = live[live["round"] == round_number]
        start = time.perf_counter()
        if not this_round.empty:
            for action, group in this_round.groupby("action"):
                idx = group["idx"].to_numpy(np.int64)
                if action == "relabel":
                    ranker.relabel(idx, group["new_label"].to_numpy(np.int64))
                elif action == "drop":
                    ranker.drop(idx)
                elif action == "downweight":
                    ranker.set_weight(idx, group["weight"].to_numpy(np.float64))
                    ranker.verify(idx)
                elif action == "keep":
                    ranker.verify(idx)
            ranker.rescore()
        update_seconds = time.perf_counter() - start
        labels, weights = self._state(live[live["round"] <= round_number])
        reviewed_mask = this_round["action"] != "skip"
        n_reviewed = int(reviewed_mask.sum())
        n_found = int(this_round["action"].isin(HIT_ACTIONS).sum())
        errors_left, samples_left = self._errors_left(ranker, labels, weights, live)
        metrics: dict[str, Any] = {}
        evaluation = None
        auroc_point = auroc_low = auroc_high = float("nan")
        change = None
        start = time.perf_counter()
        if evaluate:
            if self._evaluator is None:
                folds = make_folds(self._start_labels, self._meta["n_folds"], random_state=self._meta["random_state"])
                self._evaluator = FoldedEvaluator(n_folds=self._meta["n_folds"], C=self._meta["eval_C"], folds=folds)
            probs = self._evaluator.fit(self._features, labels, weights, n_classes=len(self._class_names)).probs_
            seed = self._meta["random_state"] + round_number
            auroc_point, auroc_low, auroc_high = bootstrap_auroc(probs, labels, weights, n_boot=self._meta["n_boot"],
                                                                 random_state=seed)
            previous = self._previous_evaluation(round_number)
            if previous is not None:
                change = paired_auroc_change(previous, (probs, labels, weights), n_boot=self._meta["n_boot"],
                                             random_state=seed)
            evaluation = (probs, labels, weights)
        eval_seconds = time.perf_counter() - start
        if round_number == 0:
            base = errors_left / samples_left if samples_left else 0.0
            verdict = Verdict(plateau=False, summary=f"baseline: ~{errors_left:.0f} errors estimated in {samples_left} "
                              f"samples (base rate {base:.1%})",
                              evidence={"errors_left": errors_left, "samples_left": samples_left, "base_rate": base})
        else:
            before = self._store.closed_rounds()
            before = before[before["round"] < round_number]
            base_before = float(before.iloc[-1]["base_rate"]) if len(before) else None
            verdict = plateau_verdict(n_reviewed=n_reviewed, n_errors_found=n_found, errors_left=errors_left,
                                      samples_left=samples_left, auroc_change=change, base_rate=base_before)
        result = RoundResult(
            round=round_number, n_reviewed=n_reviewed, n_errors_found=n_found,
            n_skipped=int((~reviewed_mask).sum()), hit_rate=n_found / n_reviewed if n_reviewed else float("nan"),
            auroc=auroc_point, auroc_low=auroc_low, auroc_high=auroc_high, auroc_change=change,
            errors_left=float(errors_left), samples_left=int(samples_left),
            base_rate=errors_left / samples_left if samples_left else 0.0, verdict=verdict,
            update_seconds=update_seconds, eval_seconds=eval_seconds,
        )
        metrics = {
            "n_reviewed": result.n_reviewed, "n_errors_found": result.n_errors_found, "n_skipped": result.n_skipped,
            "hit_rate": _none_nan(result.hit_rate), "auroc": _none_nan(auroc_point), "auroc_low": _none_nan(auroc_low),
            "auroc_high": _none_nan(auroc_high),
            "auroc_change": change[0] if change else None, "change_low": change[1] if change else None,
            "change_high": change[2] if change else None, "errors_left": result.errors_left,
            "samples_left": result.samples_left, "base_rate": result.base_rate, "plateau": int(verdict.plateau),
            "verdict": verdict.summary, "update_seconds": update_seconds, "eval_seconds": eval_seconds,
            "evidence": verdict.evidence,
        }
        try:
            self._store.add_round_event(round_number, "close", metrics=metrics, evaluation=evaluation)
        except BaseException:
            self._ranker = None  # it already holds this round's changes; refit from the file on next use
            self._evaluator = None
            raise
        logger.debug("round %d: %s", round_number, verdict.summary)
        return result

    def _errors_left(self, ranker, labels: np.ndarray, weights: np.ndarray, live: pd.DataFrame) -> tuple[float, int]:
        """Estimated errors among the unreviewed kept samples of the classes being cleaned.

        The larger of the confident joint's count and the sum of the ranking's scores calibrated on
        the reviewer's verdicts (:mod:`coreclean.sessions.errors_left`).
        """
        from coreclean.scoring.confident_joint import confident_joint
        from coreclean.sessions.errors_left import estimate_residual_errors

        decided = live[live["action"] != "skip"]
        unreviewed = np.ones(labels.size, dtype=bool)
        unreviewed[decided["idx"].to_numpy(np.int64)] = False
        mask = unreviewed & (weights > 0)
        joint = confident_joint(ranker.probs_, labels, sample_weight=mask.astype(np.float64))
        classes = self._class_indices()
        if self.against is not None:
            partner = self._class_names.index(self.against)
            prior = float(sum(joint[c, partner] for c in classes))
            scores = ranker.probs_[:, partner].astype(np.float64)
        else:
            prior = float(sum(joint[c].sum() - joint[c, c] for c in classes))
            scores = ranker.scores_
        pool = mask & np.isin(labels, classes)
        estimate = estimate_residual_errors(decided["score"].to_numpy(np.float64),
                                            decided["action"].isin(HIT_ACTIONS).to_numpy(),
                                            scores[pool], prior_estimate=prior)
        return estimate.errors_left, int(pool.sum())

    def _previous_evaluation(self, round_number: int):
        closed = self._store.closed_rounds()
        closed = closed[closed["round"] < round_number]
        if closed.empty:
            return None
        return self._store.evaluation(int(closed.iloc[-1]["id"]))

    def rounds(self) -> pd.DataFrame:
        """The closed rounds, one row each (round 0 = baseline), with cumulative counts.

        Columns: ``round, n_reviewed, n_errors_found, n_skipped, hit_rate, reviewed_total,
        errors_found_total, auroc, auroc_low, auroc_high, auroc_change, change_low, change_high,
        errors_left, samples_left, base_rate, plateau, verdict, update_seconds, eval_seconds, closed_at``.
        """
        closed = self._store.closed_rounds()
        columns = ["round", "n_reviewed", "n_errors_found", "n_skipped", "hit_rate", "reviewed_total",
                   "errors_found_total", "auroc", "auroc_low", "auroc_high", "auroc_change", "change_low",
                   "change_high", "errors_left", "samples_left", "base_rate", "plateau", "verdict",
                   "update_seconds", "eval_seconds", "closed_at"]
        if closed.empty:
            return pd.DataFrame(columns=columns)
        frame = closed.rename(columns={"at": "closed_at"}).copy()
        frame["reviewed_total"] = frame["n_reviewed"].cumsum()
        frame["errors_found_total"] = frame["n_errors_found"].cumsum()
        frame["plateau"] = frame["plateau"].astype(bool)
        return frame[columns].reset_index(drop=True)

    def decisions(self) -> pd.DataFrame:
        """The complete audit trail: every decision and undo record, with class names and a ``revoked`` flag."""
        frame = self._store.decisions()
        names = np.asarray(self._class_names, dtype=object)
        out = pd.DataFrame({
            "decision_id": frame["id"], "round": frame["round"], "id": self._sample_ids[frame["idx"].to_numpy(np.int64)].astype(str),
            "action": frame["action"],
            "old_label": [names[int(v)] if not pd.isna(v) else "" for v in frame["old_label"]],
            "new_label": [names[int(v)] if not pd.isna(v) else "" for v in frame["new_label"]],
            "weight": frame["weight"], "reviewer": frame["reviewer"], "score": frame["score"],
            "decided_at": frame["decided_at"], "undoes": frame["undoes"], "revoked": frame["revoked"],
        })
        return out

    def undo(self, scope: str = "decision", *, reviewer: str | None = None) -> pd.DataFrame:
        """Revoke the last decision, or the last round, by appending undo records (nothing is deleted).

        Parameters
        ----------
        scope : {"decision", "round"}
            ``"decision"``: the most recent live decision of the open round. ``"round"``: every live
            decision of the open round; if it has none, reopen the last closed round (its result is
            revoked, its decisions too, and its batch is shown again).

        Returns
        -------
        pandas.DataFrame
            The revoked decisions (as in :meth:`decisions`).

        Raises
        ------
        SessionError
            Nothing to undo, or an unknown scope.
        """
        if scope not in ("decision", "round"):
            raise SessionError(f"scope must be 'decision' or 'round'; got {scope!r}.")
        round_number = self.round
        live = self._store.live_decisions()
        open_round = live[live["round"] == round_number]
        if scope == "decision":
            if open_round.empty:
                raise SessionError(f"no decision to undo in the open round {round_number}; "
                                   "use undo(scope='round') to reopen the previous round.")
            target = open_round.iloc[[-1]]
            self._store.add_decisions([{"round": round_number, "idx": int(target.iloc[0]["idx"]), "action": "undo",
                                        "undoes": int(target.iloc[0]["id"]), "reviewer": reviewer}])
        elif not open_round.empty:
            target = open_round
            self._store.add_decisions([{"round": round_number, "idx": int(r.idx), "action": "undo",
                                        "undoes": int(r.id), "reviewer": reviewer} for r in target.itertuples()])
        else:
            if round_number <= 1:
                raise SessionError("nothing to undo: no decision yet and no round closed after the baseline.")
            previous = round_number - 1
            target = live[live["round"] == previous]
            self._store.add_round_event(previous, "reopen", undo_decisions=[
                {"round": previous, "idx": int(r.idx), "undoes": int(r.id), "reviewer": reviewer}
                for r in target.itertuples()])
            self._ranker = None  # the applied labels changed: refit on next use
            self._evaluator = None
        revoked = self.decisions()
        return revoked[revoked["decision_id"].isin(target["id"])].reset_index(drop=True)

    # ------------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        """A summary for people and pages: settings, progress, the last verdict.

        Returns
        -------
        dict
            ``path, cache_dir, classes, against, batch_size, method, round, batch_size_total,
            batch_decided, reviewed_total, errors_found_total, actions (counts), last_verdict,
            plateau, n_rounds_closed``.
        """
        live = self._store.live_decisions()
        rounds = self.rounds()
        batch = self._store.batch(self.round)
        decided_now = live[live["round"] == self.round]
        last = rounds.iloc[-1] if len(rounds) else None
        return {
            "path": self.path, "cache_dir": str(self.cache_dir), "classes": self.classes, "against": self.against,
            "batch_size": self.batch_size, "method": self._meta["method"], "round": self.round,
            "batch_shown": len(batch), "batch_decided": int(batch["idx"].isin(decided_now["idx"]).sum()) if len(batch) else 0,
            "pending_decisions": len(decided_now),
            "reviewed_total": int((live["action"] != "skip").sum()),
            "errors_found_total": int(live["action"].isin(HIT_ACTIONS).sum()),
            "actions": {a: int((live["action"] == a).sum()) for a in ACTIONS},
            "n_rounds_closed": max(len(rounds) - 1, 0),
            "last_verdict": None if last is None else last["verdict"],
            "plateau": None if last is None or last["round"] == 0 else bool(last["plateau"]),
        }

    def export(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write the cleaned labels, the label patch, the audit trail and the rounds to ``out_dir``.

        See :func:`coreclean.sessions.export.export_session`. Returns the written paths by name.
        """
        from coreclean.sessions.export import export_session

        return export_session(self, out_dir)


# ---------------------------------------------------------------------------------- helpers
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


def _preview(names: list[str]) -> str:
    return str(names[:10]) + (f" (+{len(names) - 10} more)" if len(names) > 10 else "")


def _label_index(value: object, class_names: list[str]) -> int | None:
    text = str(value).strip()
    if text in class_names:
        return class_names.index(text)
    if isinstance(value, (int, np.integer)) and 0 <= int(value) < len(class_names):
        return int(value)
    return None


def _resolve_class(name: str | None, class_names: list[str]) -> int:
    if name in class_names:
        return class_names.index(name)
    close = difflib.get_close_matches(str(name), class_names, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise SessionError(f"no class {name!r} in this cache; known classes: {_preview(class_names)}.{hint}")


def _none_nan(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
