"""Which ranker does a session use right now? The ranker, kept in step with the decision log.

:class:`SessionModel` owns the session's :class:`~coreclean.scoring.ranker.LabelIssueRanker`, whose
out-of-sample probabilities also measure each round (no separate evaluation fit). The ranker is
fitted on the labels the session started from, the logged decisions applied as they were made, and
tagged with the log's rounds version; when another process (the review
page, a second terminal) closes or reopens a round, the version moves and the next use refits, so
no batch is ever drawn from a stale model. Batches are drawn here too; the one after a round is
drawn as the round closes, while its ranker is in hand (:meth:`SessionModel.prepare_batch`). A
session started with the caller's own model probabilities fits every ranker on them, unchanged:
reviews move the neighbour vote, the noise prior and trust, never those probabilities (a
relabelled sample keeps its row; a dropped one leaves the pool by its weight).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from coreclean._internal.threads import limit_threads
from coreclean.exceptions import SessionError
from coreclean.sessions import state
from coreclean.sessions.batches import allocate_by_score, choose_audits, choose_batch
from coreclean.sessions.closing import apply_round, measure_labels, summarize_round
from coreclean.sessions.rounds import RoundResult
from coreclean.sessions.stopping import errors_left_by_class
from coreclean.sessions.store import HIT_ACTIONS, BatchRow, SessionStore

__all__ = ["SessionModel"]

logger = logging.getLogger(__name__)


class SessionModel:
    """A session's ranker over its features (see the module docstring).

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    class_names : list of str
    meta : dict
        The session's settings (``method``, ``ranker_params``, ``random_state``, ``classes``,
        ``against``, ``evaluate``, ``n_boot``, ``batch_size``, ``allocation``, ``audit``).
    start_labels, start_weights : ndarray of shape (n_samples,)
    n_threads : int, optional
        Thread override for fits (None: automatic).
    memory : str or None
        Where the ranker caches its label-blind work across processes (its ``memory``).
    """

    def __init__(self, features: np.ndarray, class_names: list[str], meta: dict[str, Any], start_labels: np.ndarray,
                 start_weights: np.ndarray, n_threads: int | None, memory: str | None = None) -> None:
        self.features, self.class_names, self.meta = features, class_names, meta
        self.start_labels, self.start_weights, self.n_threads = start_labels, start_weights, n_threads
        self.memory = memory
        self._ranker = None
        self._version: int | None = None
        self._pred_probs: np.ndarray | None = None

    def threads(self):
        """The thread limit for work on all samples (a context manager)."""
        return limit_threads(self.n_threads, n_samples=self.features.shape[0], n_features=self.features.shape[1])

    def forget(self) -> None:
        """Drop the fitted ranker: the next use refits it from the log."""
        self._ranker = None

    def ranker(self, store: SessionStore, applied: pd.DataFrame):
        """The ranker with the ``applied`` decisions in; refitted when the log's rounds changed since it was fitted."""
        version = store.rounds_version()
        if self._ranker is not None and self._version == version:
            return self._ranker
        from coreclean.scoring.ranker import LabelIssueRanker

        if self._pred_probs is None and self.meta.get("pred_probs"):
            self._pred_probs = store.pred_probs()
            if self._pred_probs is None:
                raise SessionError(f"session {store.path} was started with pred_probs, but its file no longer holds "
                                   "them; start a new session with --pred-probs.")
        start = time.perf_counter()
        ranker = LabelIssueRanker(self.meta["method"], random_state=self.meta["random_state"], memory=self.memory,
                                  **self.meta["ranker_params"])
        # Fitted on the labels the session started from, then the decisions applied as the review
        # made them: the ranker keeps each relabelled sample's given label (a confirmed error feeds
        # the noise structure), so a new process ranks exactly as the process that closed the round.
        with self.threads():
            ranker.fit(self.features, self.start_labels, self.start_weights, n_classes=len(self.class_names),
                       pred_probs=self._pred_probs)
            apply_round(ranker, applied[applied["action"] != "skip"])
        logger.debug("fitted the %s ranker on %d samples in %.1f s", self.meta["method"], self.start_labels.size,
                     time.perf_counter() - start)
        self._ranker, self._version = ranker, version
        return ranker

    def mark_current(self, store: SessionStore) -> None:
        """Record that the ranker in hand matches the log as it is now (after this process closed a round)."""
        self._version = store.rounds_version()

    def scores(self, ranker) -> np.ndarray:
        """What batches are ranked by: the score, or the probability of the partner class."""
        if self.meta["against"] is None:
            return ranker.scores_
        return ranker.probs_[:, self.class_names.index(self.meta["against"])].astype(np.float64)

    def audit_scores(self, ranker, decided: pd.DataFrame) -> np.ndarray:
        """Per row of ``decided``: an audit's score now under the label it was drawn with (NaN for other rows).

        The unreviewed pool is scored by the ranker in hand, so an audit's residual is measured on the
        same scale (:meth:`~coreclean.scoring.ranker.LabelIssueRanker.scores_under`), not at the score it
        had when shown: the scores move as the labels are cleaned, and residuals at old scores made the
        count drift (CIFAR-10N worse, ``benchmarks/audit_sampling.py``: 15,000 for 17,250 at round 5
        with 20 audits a class a round, 17,400 at the scores now).
        """
        out = np.full(len(decided), np.nan)
        rows = np.flatnonzero(state.audited(decided))
        if rows.size == 0:
            return out
        idx = decided["idx"].to_numpy(np.int64)[rows]
        if self.meta["against"] is None:
            out[rows] = ranker.scores_under(idx, decided["old_label"].to_numpy(np.int64)[rows])
        else:  # the partner class's probability does not depend on the sample's label
            out[rows] = self.scores(ranker)[idx]
        return out

    def reviews_per_class(self, scores: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                          decided: np.ndarray) -> list[int]:
        """How many samples of each class being cleaned the next batch shows (fixed, or by score past a floor)."""
        classes = self.class_indices()
        size = int(self.meta["batch_size"])
        if self.meta.get("allocation", "fixed") == "fixed" or len(classes) == 1:
            return [size] * len(classes)
        left = [scores[(labels == c) & (weights > 0) & ~decided] for c in classes]
        return allocate_by_score(left, size * len(classes), floor=max(1, size // 5)).tolist()

    def draw_batch(self, store: SessionStore, round_number: int) -> list[BatchRow]:
        """``round_number``'s batch as :meth:`SessionStore.add_batch` rows, drawn from the log as it is now.

        Each class's ranked samples come first, then its ``audit`` samples drawn at random from the
        rest (the same draw for the same log, seed and round: see :func:`choose_audits`).
        """
        live = store.live_decisions()
        applied = state.decided_before(live, round_number)
        ranker = self.ranker(store, applied)
        decided = np.zeros(self.start_labels.size, dtype=bool)
        decided[live["idx"].to_numpy(np.int64)] = True
        labels, weights = state.replay(self.start_labels, self.start_weights, applied)
        scores = self.scores(ranker)
        per_class = self.reviews_per_class(scores, labels, weights, decided)
        chosen = choose_batch(scores, labels, weights, decided, self.class_indices(), per_class)
        audits = choose_audits(labels, weights, decided, self.class_indices(), [i for i, _ in chosen],
                               int(self.meta.get("audit", 0)), seed=(int(self.meta["random_state"]), round_number))
        shown = [(i, c, False) for i, c in chosen] + [(i, c, True) for i, c in audits]
        order = {c: k for k, c in enumerate(self.class_indices())}
        shown.sort(key=lambda item: (order[item[1]], item[2]))  # stable: ranked order, then the draw's, per class
        return [(k, i, c, float(scores[i]), int(ranker.suggested_labels_[i]), float(ranker.suggested_probs_[i]), a)
                for k, (i, c, a) in enumerate(shown)]

    def prepare_batch(self, store: SessionStore, round_number: int) -> None:
        """Draw the open ``round_number``'s batch now, while the ranker that closed the round before is in hand.

        Kept beside the log (:meth:`SessionStore.prepare_batch`), not shown: ``next_batch`` records it
        as shown when it is, and only while the log is unchanged. It comes from the ranker whose
        numbers the round reports; a new process's refit ranks the same up to floating-point rounding
        (which can swap near-ties), and is no longer needed (3.7 s of a 3,000-image ``session next``,
        0.9 s with the batch drawn ahead). A batch already shown is left as it is.
        """
        if not store.batch(round_number).empty:
            return
        version = store.log_version()
        with self.threads():
            rows = self.draw_batch(store, round_number)
        try:
            store.prepare_batch(round_number, version, rows)
        except SessionError as err:  # the round is closed; `next` will draw the batch itself
            logger.warning("could not keep round %d's batch drawn ahead: %s", round_number, err)

    def class_indices(self) -> list[int]:
        """The classes being cleaned, as indices."""
        return [self.class_names.index(name) for name in self.meta["classes"]]

    def measure_round(self, store: SessionStore, round_number: int, *,
                      evaluate: bool | None) -> tuple[RoundResult, tuple | None]:
        """Apply the round's decisions to the ranker, then measure: ``(RoundResult, evaluation or None)``."""
        live = store.live_decisions()
        this_round = live[live["round"] == round_number]
        ranker = self.ranker(store, state.decided_before(live, round_number))
        update_seconds = apply_round(ranker, this_round)
        labels, weights = state.replay(self.start_labels, self.start_weights, live[live["round"] <= round_number])
        decided = live[live["action"] != "skip"]
        errors, samples, spread = errors_left_by_class(self.scores(ranker), labels, weights, decided,
                                                       self.class_indices(),
                                                       audit_scores=self.audit_scores(ranker, decided))
        auroc, change, evaluation, eval_seconds = (float("nan"),) * 3, None, None, 0.0
        if self.meta["evaluate"] if evaluate is None else evaluate:
            auroc, change, evaluation, eval_seconds = measure_labels(
                ranker.probs_, labels, weights, previous=_previous_evaluation(store, round_number),
                n_boot=self.meta["n_boot"], seed=self.meta["random_state"] + round_number)
        hits = live[(live["round"] <= round_number) & live["action"].isin(HIT_ACTIONS)]
        found = {int(c): int(n) for c, n in hits.groupby("old_label").size().items()}
        result = summarize_round(round_number, this_round, errors_left=errors, samples_left=samples, errors_found=found,
                                 errors_left_sd=spread,
                                 auroc=auroc, change=change,
                                 class_names=self.class_names, update_seconds=update_seconds,
                                 eval_seconds=eval_seconds)
        return result, evaluation


def _previous_evaluation(store: SessionStore, round_number: int):
    closed = store.closed_rounds()
    closed = closed[closed["round"] < round_number]
    return None if closed.empty else store.evaluation(int(closed.iloc[-1]["id"]))
