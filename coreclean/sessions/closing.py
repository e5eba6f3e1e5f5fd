"""What happens when a round closes? Apply its decisions to the ranker, measure the labels, give the verdict.

Three steps, each on explicit inputs: :func:`apply_round` (the ranker learns the round's
decisions and re-scores incrementally), :func:`measure_labels` (the AUROC of the ranker's out-of-sample class
probabilities against the current labels, with a bootstrap interval and the paired change from the
last round: the ranker's fold models, already updated for the round, so measuring costs no fit) and
:func:`summarize_round` (counts, errors left, base rate and the verdict as a
:class:`~coreclean.sessions.rounds.RoundResult`). :class:`~coreclean.sessions.session.CleaningSession`
strings them together and stores the result.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from coreclean.evaluation.auroc import bootstrap_auroc, paired_auroc_change
from coreclean.sessions.rounds import RoundResult
from coreclean.sessions.state import audited
from coreclean.sessions.stopping import Verdict, stop_verdict
from coreclean.sessions.store import HIT_ACTIONS

__all__ = ["apply_round", "measure_labels", "summarize_round"]


def apply_round(ranker, decisions: pd.DataFrame) -> float:
    """Apply one round's live decisions to ``ranker`` (relabel, drop, set_weight, verify) and re-score.

    Returns the wall time it took, in seconds. A round with no decision leaves the ranker as it is.
    """
    start = time.perf_counter()
    if decisions.empty:
        return 0.0
    for action, group in decisions.groupby("action"):
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
    return time.perf_counter() - start


def measure_labels(probs: np.ndarray, labels: np.ndarray, weights: np.ndarray, *,
                   previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None, n_boot: int,
                   seed: int) -> tuple[tuple[float, float, float], tuple[float, float, float] | None,
                                       tuple[np.ndarray, np.ndarray, np.ndarray], float]:
    """AUROC of out-of-sample class ``probs`` on the current labels: ``((auroc, low, high), change, evaluation, seconds)``.

    ``probs`` are the ranker's (out-of-fold models and leave-self-out neighbour votes, refitted for
    the round's decisions). ``change`` is the paired-bootstrap change from ``previous`` (None without
    one); ``evaluation`` is ``(probs, labels, weights)`` to store for the next round's pairing.
    """
    start = time.perf_counter()
    probs = np.asarray(probs, dtype=np.float64)
    point = bootstrap_auroc(probs, labels, weights, n_boot=n_boot, random_state=seed)
    change = None
    if previous is not None:
        change = paired_auroc_change(previous, (probs, labels, weights), n_boot=n_boot, random_state=seed)
    return point, change, (probs, labels, weights), time.perf_counter() - start


def summarize_round(round_number: int, decisions: pd.DataFrame, *, errors_left: Mapping[int, float],
                    samples_left: Mapping[int, int],
                    errors_found: Mapping[int, int], auroc: tuple[float, float, float],
                    change: tuple[float, float, float] | None,
                    class_names: Sequence[str], update_seconds: float, eval_seconds: float,
                    errors_left_sd: Mapping[int, float] | None = None) -> RoundResult:
    """The round's :class:`RoundResult`: counts, errors left (total and by class), base rate and verdict.

    Parameters
    ----------
    decisions : DataFrame
        The round's live decisions (columns ``action`` and, optionally, ``audit``: the hit rate is
        the ranked reviews', the counts and the base rate include the audits).
    errors_left, samples_left : mapping of class index to number
        After the round, per class being cleaned.
    errors_found : mapping of class index to int
        Errors found so far in each class being cleaned, this round included.
    errors_left_sd : mapping of class index to float, optional
        The standard deviation of ``errors_left``, where random audits measured it.

    The base rate of a reviewed round is the hit rate random review would have had in it: the errors
    among the samples unreviewed when it started (those it found plus those estimated left) over
    their number, both as known after the round. The estimate from before the round would carry the
    ranker's uncalibrated count into round 1 (twice the truth on a confusable class), and the
    comparison with random review is about the round just seen.
    """
    reviewed = decisions["action"] != "skip"
    n_reviewed = int(reviewed.sum())
    n_found = int(decisions["action"].isin(HIT_ACTIONS).sum())
    audit = audited(decisions)
    audits = (int((reviewed & audit).sum()), int((decisions["action"].isin(HIT_ACTIONS) & audit).sum()))
    n_ranked, n_ranked_found = n_reviewed - audits[0], n_found - audits[1]
    total_left = float(sum(errors_left.values()))
    total_samples = int(sum(samples_left.values()))
    rate_after = total_left / total_samples if total_samples else 0.0
    if round_number == 0:
        verdict = Verdict(plateau=False, summary=f"baseline: ~{total_left:.0f} errors estimated in {total_samples} "
                          f"samples (base rate {rate_after:.1%})",
                          evidence={"errors_left": total_left, "samples_left": total_samples, "base_rate": rate_after})
        base_rate = rate_after
    else:
        verdict = stop_verdict(n_reviewed=n_ranked, n_errors_found=n_ranked_found, audits=audits,
                               errors_left={class_names[c]: float(v) for c, v in errors_left.items()},
                               errors_found={class_names[c]: int(errors_found.get(c, 0)) for c in errors_left},
                               samples_left=total_samples, auroc_change=change,
                               errors_left_sd={class_names[c]: float(v) for c, v in (errors_left_sd or {}).items()},
                               base_rate=(n_found + total_left) / (total_samples + n_reviewed)
                               if total_samples + n_reviewed else 0.0)
        base_rate = float(verdict.evidence["base_rate"])
    return RoundResult(
        round=round_number, n_reviewed=n_reviewed, n_errors_found=n_found, n_skipped=int((~reviewed).sum()),
        hit_rate=n_ranked_found / n_ranked if n_ranked else float("nan"),
        auroc=auroc[0], auroc_low=auroc[1], auroc_high=auroc[2], auroc_change=change,
        errors_left=total_left, samples_left=total_samples, base_rate=base_rate,
        errors_left_by_class={class_names[c]: float(v) for c, v in errors_left.items()},
        verdict=verdict, update_seconds=update_seconds, eval_seconds=eval_seconds,
    )
