"""What did closing a round measure? :class:`RoundResult`, and its row in the session file."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from coreclean.sessions.stopping import Verdict

__all__ = ["RoundResult"]


@dataclass(frozen=True)
class RoundResult:
    """What closing a round measured.

    Attributes
    ----------
    round : int
    n_reviewed : int
        Decisions of the round, skips excluded (random audits included).
    n_errors_found : int
        Relabels, drops and down-weights among them.
    n_skipped : int
    hit_rate : float
        The share of errors among the round's ranked reviews: ``n_errors_found / n_reviewed`` when
        the session draws no audits; audits are left out, as they measure the pool, not the ranking
        (NaN when nothing ranked was reviewed). The audits' counts are in ``verdict.evidence``.
    auroc, auroc_low, auroc_high : float
        Cross-validated macro AUROC on the current labels and its bootstrap interval (NaN when not evaluated).
    auroc_change : tuple of float or None
        ``(change, low, high)`` against the previous round, paired bootstrap on the same folds and samples.
    errors_left : float
        Estimated label errors left among the unreviewed samples of the classes being cleaned, after the round.
    samples_left : int
        Unreviewed kept samples of those classes, after the round.
    base_rate : float
        The hit rate random review would have had in this round (the number the verdict compares the
        hit rate with): (errors it found + errors estimated left) / samples unreviewed at its start,
        as estimated after it. Round 0: errors estimated / samples.
    errors_left_by_class : dict of str to float
        ``errors_left`` split by class.
    verdict : Verdict
        Whether to stop, and why.
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
    errors_left_by_class: dict[str, float]
    verdict: Verdict
    update_seconds: float
    eval_seconds: float

    def to_row(self) -> dict[str, Any]:
        """The columns of the session file's ``rounds`` table (NaN stored as NULL)."""
        row = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("auroc_change", "verdict", "errors_left_by_class")}
        change = self.auroc_change or (None, None, None)
        row.update(auroc_change=change[0], change_low=change[1], change_high=change[2],
                   plateau=int(self.verdict.plateau), verdict=self.verdict.summary,
                   evidence={**self.verdict.evidence, "errors_left_by_class": self.errors_left_by_class})
        return {key: _none_nan(value) for key, value in row.items()}


def _none_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
