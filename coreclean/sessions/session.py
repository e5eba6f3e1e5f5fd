"""How do I clean a class, batch by batch, and know when to stop? :class:`CleaningSession`.

A session cleans one or more classes of one embedding set. Each *round* shows the most suspicious
not-yet-decided samples of the classes being cleaned, takes the reviewer's decisions (keep /
relabel / drop / downweight / skip), and when closed applies them to the ranker
(:class:`coreclean.scoring.ranker.LabelIssueRanker`), measures the AUROC of its out-of-sample
probabilities on the current labels and gives a verdict: go on, or stop.

The class is a facade over small parts, each testable alone: the decision log
(:mod:`~coreclean.sessions.store`, the one source of truth; labels and weights are replayed from it
by :mod:`~coreclean.sessions.state`), decision parsing and validation
(:mod:`~coreclean.sessions.decisions`), batch choice and the review budget
(:mod:`~coreclean.sessions.batches`), errors left and the verdict (:mod:`~coreclean.sessions.stopping`)
and export (:mod:`~coreclean.sessions.export`). Each decision is its own committed transaction, so a
killed process loses nothing decided. The ranker is not stored; a reopened session refits it once
from the cache and the replayed labels and weights, and a session notices when another process
(the review page, a second terminal) closed or reopened a round and refits before using it.

Typical use: README.md, "Cleaning sessions".
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coreclean.embedding.cache import derived_dir
from coreclean.exceptions import DecisionError, SessionError
from coreclean.sessions import corrections, reporting, state
from coreclean.sessions.batches import batch_frame
from coreclean.sessions.decisions import read_decisions, resolve_class, validate_decisions
from coreclean.sessions.rounds import RoundResult
from coreclean.sessions.setup import bind_cache, plan_session
from coreclean.sessions.model import SessionModel
from coreclean.sessions.store import RoundRaceError, SessionStore

__all__ = ["CleaningSession", "RoundResult"]

logger = logging.getLogger(__name__)

_CLOSE_ATTEMPTS = 3


class CleaningSession:
    """A resumable, audited cleaning session over one embedding set; create with :meth:`start` or :meth:`open`.

    Read-only properties: ``path``, ``cache_dir`` / ``cache_key`` (the embedding set), ``class_names``
    (all), ``classes`` (being cleaned), ``against`` (partner class or None), ``batch_size`` (reviews
    per class per round), ``allocation`` (``"errors"`` or ``"fixed"``, see
    :mod:`~coreclean.sessions.batches`), ``audit`` (random audits per class per round), ``round``
    (the open one; 0 is the baseline), ``sample_ids``, ``paths``, ``labels`` / ``weights`` (now, open round included; weight 0 = dropped) and
    ``start_labels`` / ``start_weights``.
    """

    # ------------------------------------------------------------------ construction
    def __init__(self, store: SessionStore, *, cache_dir: str | os.PathLike | None = None,
                 n_threads: int | None = None) -> None:
        """Use :meth:`start` or :meth:`open`; this wraps an already opened store."""
        self._store = store
        self.n_threads = n_threads
        self._meta = store.meta()
        cache_dir = Path(cache_dir) if cache_dir is not None else Path(self._meta["cache_dir"])
        bound = bind_cache(cache_dir, self._meta, store.path)
        self.cache_dir, self._features, self._class_names = cache_dir, bound.features, bound.class_names
        self._sample_ids, self._paths = bound.sample_ids, bound.paths
        self._id_index = {str(sid): i for i, sid in enumerate(self._sample_ids)}
        snapshot = store.snapshot()
        if len(snapshot) != self._sample_ids.size or not np.array_equal(snapshot["sample_id"].to_numpy(str),
                                                                          self._sample_ids.astype(str)):
            raise SessionError(f"session {store.path} and cache {cache_dir} list different samples; "
                               "open it with the cache it was started on (--cache DIR).")
        self._start_labels = snapshot["label"].to_numpy(np.int64)
        self._start_weights = snapshot["weight"].to_numpy(np.float64)
        self._model = SessionModel(self._features, self._class_names, self._meta, self._start_labels,
                                   self._start_weights, n_threads, str(derived_dir(cache_dir, self.cache_key)))

    @classmethod
    def start(
        cls,
        cache_dir: str | os.PathLike,
        path: str | os.PathLike,
        *,
        classes: list[str],
        against: str | None = None,
        batch_size: int = 50,
        allocation: str = "errors",
        method: str = "coreclean",
        evaluate: bool = True,
        n_boot: int = 200,
        labels: np.ndarray | None = None,
        key: str | None = None,
        ranker_params: dict[str, Any] | None = None,
        random_state: int = 0,
        n_threads: int | None = None,
        pred_probs: np.ndarray | None = None,
        audit: int = 0,
    ) -> "CleaningSession":
        """Start a session in a new file ``path`` on the embedding set in ``cache_dir``.

        Parameters
        ----------
        cache_dir : str or os.PathLike
            A cache written by ``coreclean embed`` (the most recent embedding set, or ``key``).
        path : str or os.PathLike
            The new session file (``":memory:"``: nothing on disk, for simulations).
        classes : list of str
            Class names to clean.
        against : str, optional
            A partner class: rank each class's samples by their probability of being ``against``.
        batch_size : int
            Samples per class per round (the P1 protocol: 3 classes x 33).
        allocation : {"errors", "fixed"}
            How a round's ``batch_size x len(classes)`` reviews are split across the classes: by
            estimated errors left, each class keeping a floor (``"errors"``), or ``batch_size`` each
            (``"fixed"``). With one class both are the same.
        method : str
            A ranker of :data:`coreclean.scoring.methods.REGISTRY` (``"random"`` for a baseline).
        evaluate : bool
            Measure, at every round close, the AUROC of the ranker's out-of-sample probabilities on
            the current labels, with its bootstrap interval and change (no extra fit).
        n_boot : int
            Bootstrap draws of that AUROC's interval and change.
        labels : ndarray of shape (n_samples,), optional
            Start from these label indices instead of the cache's (e.g. a benchmark's noisy labels).
        key : str, optional
            Embedding set key (default: the most recent in ``cache_dir``).
        ranker_params : dict, optional
            Extra :class:`LabelIssueRanker` parameters (``n_folds``, ``C``, ...).
        random_state : int
        n_threads : int, optional
            Override the automatic thread count (see :func:`coreclean._internal.threads.limit_threads`).
            Not stored: pass it again to :meth:`open`.
        pred_probs : ndarray of shape (n_samples, n_classes), optional
            Your model's out-of-sample probabilities (cache row and class order), stored and fixed.
        audit : int
            Samples per class per round drawn at random, shown after the ranked ones: they measure the
            errors left (:func:`~coreclean.sessions.errors_left.audit_corrected_count`); not in the hit rate.

        Raises
        ------
        SessionError
            Unknown or empty class, ``path`` already holding a session, unreadable cache.
        """
        meta, sample_ids, start_labels, pred_probs = plan_session(
            cache_dir, path, classes=classes, against=against, batch_size=batch_size, allocation=allocation,
            method=method, evaluate=evaluate, n_boot=n_boot, labels=labels, key=key,
            ranker_params=ranker_params, random_state=random_state, pred_probs=pred_probs, audit=audit)
        store = SessionStore(path, create=True)
        try:
            store.initialize(meta, sample_ids, start_labels, np.ones(start_labels.size), pred_probs)
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

        ``cache_dir``: where the cache is now (default: where it was at start; its fingerprint must
        match). ``read_only``: for status and export (writes raise :class:`SessionError`).
        ``n_threads``: override the automatic thread count (see :meth:`start`).

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
        """Close the session file (its write-ahead log is folded in: the file alone holds everything)."""
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
    def allocation(self) -> str:
        return str(self._meta.get("allocation", "fixed"))  # sessions from before the budget were fixed

    @property
    def audit(self) -> int:
        """Random audits per class per round (0: none)."""
        return int(self._meta.get("audit", 0))  # sessions from before audits drew none

    @property
    def sample_ids(self) -> np.ndarray:
        return self._sample_ids.copy()

    @property
    def paths(self) -> np.ndarray:
        return self._paths.copy()

    @property
    def start_labels(self) -> np.ndarray:
        """Every sample's label when the session started."""
        return self._start_labels.copy()

    @property
    def start_weights(self) -> np.ndarray:
        """Every sample's weight when the session started."""
        return self._start_weights.copy()

    @property
    def round(self) -> int:
        closed = self._store.closed_rounds()
        return int(closed["round"].max()) + 1 if len(closed) else 0

    @property
    def labels(self) -> np.ndarray:
        return self._replay(self._store.live_decisions())[0]

    @property
    def weights(self) -> np.ndarray:
        return self._replay(self._store.live_decisions())[1]

    def live_decisions(self) -> pd.DataFrame:
        """The decisions in force (columns of the session file's ``decisions`` table, ``idx`` = row)."""
        return self._store.live_decisions()

    def ranker(self):
        """The fitted :class:`LabelIssueRanker` with every closed round applied (the one batches come from)."""
        return self._model.ranker(self._store, state.decided_before(self._store.live_decisions(), self.round))

    def _replay(self, live: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return state.replay(self._start_labels, self._start_weights, live)

    # ------------------------------------------------------------------ batches
    def next_batch(self) -> pd.DataFrame:
        """The open round's batch: the most suspicious undecided samples of the classes, most suspicious first.

        Idempotent: the batch is stored when first drawn, so calling again (or after a restart)
        returns the same samples, with each one's current decision.

        Returns
        -------
        pandas.DataFrame
            Columns ``round, position, index, id, path, class, label, suggested_label, suggested_prob,
            score, audit, action, new_label, weight, decision_id`` (``action`` etc. are the live decision of
            this round, or empty). Labels are class names. Empty when nothing is left to review.
        """
        round_number = self.round
        stored = self._store.batch(round_number)
        if stored.empty:
            rows = self._store.prepared_batch(round_number)
            if rows is None:
                rows = self._model.draw_batch(self._store, round_number)
            if rows:
                self._store.add_batch(round_number, rows)
            stored = self._store.batch(round_number)
        live = self._store.live_decisions()
        return batch_frame(stored, live[live["round"] == round_number],
                           self._replay(state.decided_before(live, round_number))[0], self._sample_ids, self._paths,
                           self._class_names)

    def typical(self, class_name: str, n: int = 8) -> pd.DataFrame:
        """The ``n`` least suspicious (lowest-score) kept samples labelled ``class_name``: what the class looks like.

        Returns
        -------
        pandas.DataFrame
            Columns ``index, id, path, label, score``.
        """
        class_index = resolve_class(class_name, self._class_names)
        applied = state.decided_before(self._store.live_decisions(), self.round)
        ranker = self._model.ranker(self._store, applied)
        labels, weights = self._replay(applied)
        members = np.flatnonzero((labels == class_index) & (weights > 0))
        chosen = members[np.argsort(ranker.scores_[members], kind="stable")][:n]
        return pd.DataFrame({"index": chosen, "id": self._sample_ids[chosen].astype(str),
                             "path": self._paths[chosen].astype(str), "label": self._class_names[class_index],
                             "score": ranker.scores_[chosen]})

    # ------------------------------------------------------------------ decisions
    def decide(self, sample_id: str, action: str, new_label: str | int | None = None, weight: float | None = None,
               reviewer: str | None = None) -> int:
        """Record one decision about ``sample_id`` of the open round's batch, committed before returning.

        ``action`` is one of keep / relabel / drop / downweight / skip (skip = unsure: neither a hit
        nor a miss); ``new_label`` (a class name or index) goes with relabel only; ``weight`` in (0, 1]
        with downweight only (default 0.5). Returns the decision's id (the existing one's when this
        repeats it exactly). Raises :class:`DecisionError` for an unknown id, action or label, a sample
        outside the batch, or one decided in a closed round (see :meth:`revise`).
        """
        frame = pd.DataFrame([{"id": sample_id, "action": action, "new_label": new_label, "weight": weight,
                               "reviewer": reviewer}])
        ids = self._record(frame)
        if ids:
            return ids[0]
        live = self._store.live_decisions()
        return int(live.loc[live["idx"] == self._id_index[str(sample_id).strip()], "id"].iloc[-1])

    def apply(self, decisions: pd.DataFrame | str | os.PathLike, *, reviewer: str | None = None) -> int:
        """Record many decisions at once, all or nothing: validated as a whole, written in one transaction.

        Re-applying a file whose decisions are already recorded (e.g. after a crash before the round
        closed) records nothing new: rows that repeat the live decision are left out.

        Parameters
        ----------
        decisions : DataFrame or path to a CSV
            Columns (by name) ``id, action`` and optionally ``new_label, weight, reviewer``; others
            (the batch CSV's ``path``, ``score``, ...) are ignored. Rows with an empty ``action`` are
            not decided yet and are left out.
        reviewer : str, optional
            Default reviewer for rows without one.

        Returns
        -------
        int
            Number of decisions newly recorded.

        Raises
        ------
        DecisionError
            Listing every problem (unknown ids or labels, ids outside the open round's batch, duplicate
            or conflicting rows, ...); nothing was recorded.
        """
        frame = read_decisions(decisions, reviewer=reviewer)
        if frame.empty:
            return 0
        return len(self._record(frame, first_line=2 if not isinstance(decisions, pd.DataFrame) else None))

    def _record(self, frame: pd.DataFrame, *, first_line: int | None = None) -> list[int]:
        round_number = self.round
        live = self._store.live_decisions()
        batch = self._store.batch(round_number)
        this_round = live[live["round"] == round_number]
        rows = validate_decisions(
            frame, round_number=round_number, id_index=self._id_index, class_names=self._class_names,
            labels=self._replay(state.decided_before(live, round_number))[0],
            decided_earlier=set(live.loc[live["round"] < round_number, "idx"].astype(int)),
            batch_scores=dict(zip(batch["idx"].astype(int), batch["score"].astype(float))),
            current={int(r.idx): (r.action, None if pd.isna(r.new_label) else int(r.new_label),
                                  None if pd.isna(r.weight) else float(r.weight))
                     for r in this_round.itertuples(index=False)},
            first_line=first_line,
        )
        return self._store.add_decisions(rows) if rows else []

    def revise(self, sample_id: str, action: str, new_label: str | int | None = None, weight: float | None = None,
               reviewer: str | None = None) -> RoundResult:
        """Change one decision of a closed round, and recompute that round's numbers.

        The old decision is revoked (an undo record) and the new one appended in the same round, in
        one transaction; the round's result is then recomputed and stored as a new close of that
        round (the old close stays in the log). Only the most recent closed round can be revised
        while no later round holds decisions, so no later result rests on the old decision.

        Raises
        ------
        DecisionError
            Unknown id, action or label; a sample with no decision in a closed round; an earlier round.
        """
        target_round = corrections.revise(
            self._store, self._id_index, self._class_names, self._start_labels, self._start_weights,
            pd.DataFrame([{"id": sample_id, "action": action, "new_label": new_label, "weight": weight,
                           "reviewer": reviewer}]), open_round=self.round)
        self._model.forget()  # the applied labels changed: refit on next use
        return self._close(target_round)

    # ------------------------------------------------------------------ rounds
    def close_round(self, *, evaluate: bool | None = None) -> RoundResult:
        """Apply the open round's decisions, update the ranking, measure, and give the verdict.

        Parameters
        ----------
        evaluate : bool, optional
            Measure the round's out-of-sample AUROC (default: the session's setting).

        Raises
        ------
        DecisionError
            If the open round has no decision (close it after deciding at least one sample).
        """
        round_number = self.round
        live = self._store.live_decisions()
        if round_number > 0 and live[live["round"] == round_number].empty:
            raise DecisionError(f"round {round_number} has no decision yet; nothing to close. Fill in the action "
                                "column of the batch file and run `coreclean session apply`.")
        return self._close(round_number, evaluate=evaluate)

    def _close(self, round_number: int, *, evaluate: bool | None = None) -> RoundResult:
        """Close ``round_number`` and store its result; retried when decisions arrive meanwhile."""
        self._store.check_writable()
        for _ in range(_CLOSE_ATTEMPTS):
            version = self._store.log_version()
            try:
                with self._model.threads():
                    result, evaluation = self._model.measure_round(self._store, round_number, evaluate=evaluate)
                self._store.add_round_event(round_number, "close", metrics=result.to_row(), evaluation=evaluation,
                                            expect_version=version)
            except RoundRaceError:
                logger.info("decisions arrived while round %d was closing; closing it again", round_number)
                self._model.forget()
                continue
            except BaseException:
                self._model.forget()  # it may hold this round's changes; refit from the file on next use
                raise
            self._model.mark_current(self._store)
            logger.debug("round %d: %s", round_number, result.verdict.summary)
            if round_number == self.round - 1:
                self._model.prepare_batch(self._store, self.round)
            return result
        raise SessionError(f"round {round_number} kept changing while it was being closed (another reviewer is "
                           "deciding?); close it again when the batch is done.")

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
        target, reopened = corrections.undo(self._store, scope, open_round=self.round, reviewer=reviewer)
        if reopened:
            self._model.forget()  # the applied labels changed: refit on next use
        revoked = self.decisions()
        return revoked[revoked["decision_id"].isin(target["id"])].reset_index(drop=True)

    # ------------------------------------------------------------------ reporting
    def rounds(self) -> pd.DataFrame:
        """The closed rounds, one row each (see :func:`coreclean.sessions.reporting.rounds_table`)."""
        return reporting.rounds_table(self._store.closed_rounds())

    def decisions(self) -> pd.DataFrame:
        """The complete audit trail (see :func:`coreclean.sessions.reporting.decision_table`)."""
        return reporting.decision_table(self._store.decisions(), self._sample_ids, self._class_names)

    def status(self) -> dict[str, Any]:
        """A summary for people and pages (see :func:`coreclean.sessions.reporting.session_status`)."""
        return reporting.session_status(self._store, {
            "path": self.path, "cache_dir": str(self.cache_dir), "classes": self.classes, "against": self.against,
            "batch_size": self.batch_size, "allocation": self.allocation, "audit": self.audit,
            "method": self._meta["method"]})

    def export(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write the cleaned labels, the label patch, the audit trail and the rounds to ``out_dir``.

        See :func:`coreclean.sessions.export.export_session`. Returns the written paths by name.
        """
        from coreclean.sessions.export import export_session, session_table

        return export_session(session_table(self), self.decisions(), self.rounds(), out_dir)
