"""Should the reviewer stop? The plateau verdict from the hit rate, the base rate and the errors left.

AUROC computed on labels that are being edited rises by construction when hard samples are dropped,
so the verdict rests on the hit rate of the last round against the base rate (estimated errors left /
samples left: what random review would find) and on the estimated errors left; the AUROC change is
reported as supporting evidence only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from coreclean.sessions.store import HIT_ACTIONS

__all__ = ["Verdict", "plateau_verdict", "errors_left_by_class"]


@dataclass(frozen=True)
class Verdict:
    """Whether cleaning has plateaued, and why.

    Attributes
    ----------
    plateau : bool
        True when the last round's hits were no better than random review would find, or (almost)
        no errors are estimated left.
    summary : str
        One line for people, e.g. ``"plateau: hit rate 2% vs base rate 2% ..."``.
    evidence : dict
        ``hit_rate``, ``base_rate``, ``lift`` (hit rate / base rate), ``errors_left``,
        ``samples_left``, ``auroc_change``, ``change_low``, ``change_high``, ``auroc_trend``
        ("rising", "flat", "falling" or None) and ``reasons`` (list of str).
    """

    plateau: bool
    summary: str
    evidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def plateau_verdict(*, n_reviewed: int, n_errors_found: int, errors_left: float, samples_left: int,
                    auroc_change: tuple[float, float, float] | None = None, base_rate: float | None = None,
                    min_lift: float = 2.0,
                    min_errors_left: float = 1.0) -> Verdict:
    """Decide whether a cleaning session has plateaued after a round.

    Parameters
    ----------
    n_reviewed : int
        Samples decided in the round (skips excluded).
    n_errors_found : int
        Of those, the ones relabelled, dropped or down-weighted.
    errors_left : float
        Estimated label errors still among the unreviewed samples of the classes being cleaned.
    samples_left : int
        Unreviewed (kept) samples of those classes.
    auroc_change : (change, low, high), optional
        The paired-bootstrap AUROC change of the round (supporting evidence only).
    base_rate : float, optional
        The hit rate random review would have had in this round: errors left / samples left at the
        round's *start*. Default: ``errors_left / samples_left`` (after the round).
    min_lift : float
        A round whose hit rate is below ``min_lift`` times the base rate found no more than random
        review (roughly) would: plateau.
    min_errors_left : float
        Fewer estimated errors left than this: plateau (nothing left to find).

    Neither reason stops a session whose last round still found errors in at least half of what it
    showed: with noise that heavy (CIFAR-10N ``worse``, 40 %) random review would find as many, yet
    every round still pays.

    Returns
    -------
    Verdict
    """
    hit_rate = n_errors_found / n_reviewed if n_reviewed else float("nan")
    if base_rate is None:
        base_rate = errors_left / samples_left if samples_left else 0.0
    if base_rate > 0 and n_reviewed:
        lift = hit_rate / base_rate
    else:
        lift = float("inf") if n_errors_found else float("nan")
    exhausted = errors_left < min_errors_left or samples_left == 0
    no_lift = bool(n_reviewed) and (n_errors_found == 0 or hit_rate < min_lift * base_rate)
    still_finding = bool(n_reviewed) and hit_rate >= 0.5
    reasons = []
    if no_lift:
        reasons.append(f"the last round's hit rate {hit_rate:.0%} is not above {min_lift:g}x the base rate "
                       f"{base_rate:.1%}: the ranking finds errors no faster than random review would")
    if exhausted:
        reasons.append(f"about {errors_left:.0f} errors are estimated left in {samples_left} unreviewed samples")
    plateau = (no_lift or exhausted) and not still_finding
    trend = None
    change_text = "AUROC change not measured"
    if auroc_change is not None and np.all(np.isfinite(auroc_change)):
        change, low, high = auroc_change
        trend = "rising" if low > 0 else ("falling" if high < 0 else "flat")
        change_text = f"AUROC change {change:+.4f} [{low:+.4f}, {high:+.4f}] ({trend}"
        if plateau and trend == "rising":
            change_text += ": the model still gains, so one more round may pay)"
        elif plateau:
            change_text += ", consistent with a plateau)"
        else:
            change_text += ")"
    hit_text = f"hit rate {hit_rate:.0%} vs base rate {base_rate:.1%}" if n_reviewed else "nothing reviewed"
    left_text = f"~{errors_left:.0f} errors estimated left in {samples_left} samples"
    if plateau and no_lift and not exhausted:
        head = "plateau (the ranking no longer beats random review; errors remain)"
    elif plateau:
        head = "plateau (few or no errors left)"
    elif exhausted:
        head = "keep going (the estimate says none left, but the last round still found many: confirm with one more)"
        reasons.append("the last round's hit rate was still high")
    elif no_lift:
        head = "keep going (random review would find as many, but most of what is shown is still wrong)"
        reasons.append("the last round's hit rate was still high")
    else:
        head = "keep going"
    summary = f"{head}: {hit_text}; {left_text}; {change_text}"
    evidence = {
        "hit_rate": hit_rate, "base_rate": base_rate, "lift": lift, "errors_left": float(errors_left),
        "samples_left": int(samples_left), "n_reviewed": int(n_reviewed), "n_errors_found": int(n_errors_found),
        "auroc_change": None if auroc_change is None else float(auroc_change[0]),
        "change_low": None if auroc_change is None else float(auroc_change[1]),
        "change_high": None if auroc_change is None else float(auroc_change[2]),
        "auroc_trend": trend, "reasons": reasons,
    }
    return Verdict(plateau=plateau, summary=summary, evidence=evidence)


def errors_left_by_class(probs: np.ndarray, scores: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                         decided: pd.DataFrame, classes: Sequence[int], *,
                         against: int | None = None) -> tuple[dict[int, float], dict[int, int]]:
    """Estimated label errors among the unreviewed kept samples of each class being cleaned.

    Per class, the larger of the confident joint's count (off-diagonal of the class's row, or the
    cell of the partner class with ``against``) and the sum of the unreviewed samples' scores
    calibrated on the reviewer's verdicts (:mod:`coreclean.sessions.errors_left`).

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        The ranker's class probabilities.
    scores : ndarray of shape (n_samples,)
        What the batches are ranked by (the score, or the partner's probability).
    labels, weights : ndarray of shape (n_samples,)
        Current labels and weights.
    decided : DataFrame
        The live decisions other than ``skip`` (columns ``idx, action, score``).
    classes : sequence of int
        The classes being cleaned.
    against : int, optional
        The partner class.

    Returns
    -------
    errors_left : dict of int to float
    samples_left : dict of int to int
        Unreviewed kept samples per class.
    """
    from coreclean.scoring.confident_joint import confident_joint
    from coreclean.sessions.errors_left import calibrated_error_probabilities

    unreviewed = np.ones(labels.size, dtype=bool)
    unreviewed[decided["idx"].to_numpy(np.int64)] = False
    mask = unreviewed & (weights > 0)
    joint = confident_joint(probs, labels, sample_weight=mask.astype(np.float64))
    pool = mask & np.isin(labels, list(classes))
    calibrated = calibrated_error_probabilities(decided["score"].to_numpy(np.float64),
                                                decided["action"].isin(HIT_ACTIONS).to_numpy(), scores[pool])
    per_sample = np.zeros(labels.size)
    if calibrated is not None:
        per_sample[pool] = calibrated
    errors, samples = {}, {}
    for c in classes:
        prior = float(joint[c, against]) if against is not None else float(joint[c].sum() - joint[c, c])
        members = pool & (labels == c)
        errors[int(c)] = max(prior, float(per_sample[members].sum())) if calibrated is not None else prior
        samples[int(c)] = int(members.sum())
    return errors, samples
