"""How would a reviewer who knows the truth clean this batch? Decisions from true labels, for demos and benchmarks.

:class:`SimulatedReviewer` turns a batch (:meth:`coreclean.CleaningSession.next_batch`) into the
decisions a perfect reviewer would make: ``relabel`` to the true class where the label is wrong,
``keep`` where it is right. Feed them to :meth:`CleaningSession.apply` (one transaction per batch,
so a simulated round costs one write) or use :func:`simulated_rounds` / :func:`run_simulation` to drive whole rounds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from coreclean.exceptions import InputValidationError

__all__ = ["SimulatedReviewer", "simulated_rounds", "run_simulation"]

logger = logging.getLogger(__name__)


class SimulatedReviewer:
    """A reviewer who knows every sample's true class.

    Parameters
    ----------
    sample_ids : sequence of str
        Ids in the session's sample order.
    true_labels : ndarray of shape (n_samples,)
        The true class index of each sample.
    class_names : list of str
    name : str
        Recorded as the reviewer of every decision.
    """

    def __init__(self, sample_ids: Sequence[str], true_labels: np.ndarray, class_names: Sequence[str], *,
                 name: str = "simulated") -> None:
        true_labels = np.asarray(true_labels, dtype=np.int64)
        if len(sample_ids) != true_labels.size:
            raise InputValidationError(f"{len(sample_ids)} ids but {true_labels.size} true labels.")
        self.class_names = list(class_names)
        self.name = name
        self._truth = {str(sid): int(label) for sid, label in zip(sample_ids, true_labels)}

    def review(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Decisions for ``batch`` (needs columns ``id`` and ``label`` as class names): ``id, action, new_label, reviewer``."""
        truth = np.asarray([self.class_names[self._truth[str(sid)]] for sid in batch["id"]], dtype=object)
        wrong = batch["label"].to_numpy(dtype=object) != truth
        return pd.DataFrame({"id": batch["id"].to_numpy(), "action": np.where(wrong, "relabel", "keep"),
                             "new_label": np.where(wrong, truth, ""), "reviewer": self.name})


def simulated_rounds(session, reviewer: SimulatedReviewer, n_rounds: int, *,
                     evaluate: bool | None = None) -> Iterator:
    """Run up to ``n_rounds`` rounds of ``session`` with ``reviewer``, yielding each closed round's result.

    Each round is the session's next batch, reviewed, applied and closed; it stops early when a
    batch comes back empty (nothing left to review). Between yields the caller can read the session.
    """
    for _ in range(n_rounds):
        batch = session.next_batch()
        if batch.empty:
            return
        session.apply(reviewer.review(batch))
        yield session.close_round(evaluate=evaluate)


def run_simulation(session, reviewer: SimulatedReviewer, n_rounds: int, *, evaluate: bool | None = None) -> pd.DataFrame:
    """Run ``n_rounds`` rounds of ``session`` with ``reviewer``; return :meth:`CleaningSession.rounds`.

    Stops early when a batch comes back empty (nothing left to review).
    """
    for result in simulated_rounds(session, reviewer, n_rounds, evaluate=evaluate):
        logger.info("round %d: %d of %d were errors; %s", result.round, result.n_errors_found, result.n_reviewed,
                    result.verdict.summary)
    return session.rounds()
