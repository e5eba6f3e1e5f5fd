"""Should the reviewer stop? One verdict, "go on" or "stop", from the errors estimated left in each class.

A class is done when the errors estimated left in it, raised by one Poisson standard deviation
(``left + sqrt(left)``: the estimate is a count of a few, and a point estimate of 2 is as likely 4;
in a session with random audits, their standard deviation where it is larger), are a small share
of its errors (found so far plus estimated left), at most :data:`STOP_SHARE`, or less than one.
Judged on the point estimate alone, in-process runs of the journey folders (seeds 0-2, both allocations) stopped seed 1 with 5 of a class's 20 errors left; with the margin every run
stopped within a round of fewer than 10% being left and none with more than 20%. The session says
*stop* when every class being cleaned is done, and never while the last round still found errors in
at least half of what it showed (the estimate is then confirmed by one more round). The last round's hit
rate against the base rate (what random review would find) and the paired-bootstrap AUROC change
are shown as evidence but do not decide: AUROC on labels being edited rises by construction when
hard samples are dropped. The errors-left estimate itself is :func:`errors_left_by_class`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from coreclean.sessions.state import audited, reviewed_rows
from coreclean.sessions.store import HIT_ACTIONS

__all__ = ["Verdict", "STOP_SHARE", "stop_verdict", "errors_left_by_class"]

STOP_SHARE = 0.15
"""A class is done when at most this share of its errors is estimated left (chosen on the journey benchmark)."""


@dataclass(frozen=True)
class Verdict:
    """Whether to stop cleaning, and why.

    Attributes
    ----------
    plateau : bool
        True when the verdict is *stop* (every class done; see the module docstring).
    summary : str
        One line for people, starting with ``"stop"`` or ``"go on"``.
    evidence : dict
        ``hit_rate``, ``base_rate``, ``lift`` (hit rate / base rate), ``errors_left``,
        ``samples_left``, ``share_left_by_class``, ``done_classes``, ``auroc_change``,
        ``change_low``, ``change_high``, ``auroc_trend`` ("rising", "flat", "falling" or None) and
        ``reasons`` (list of str).
    """

    plateau: bool
    summary: str
    evidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def stop_verdict(*, n_reviewed: int, n_errors_found: int, errors_left: Mapping[str, float],
                 errors_found: Mapping[str, int], samples_left: int, base_rate: float | None,
                 auroc_change: tuple[float, float, float] | None = None, audits: tuple[int, int] = (0, 0),
                 errors_left_sd: Mapping[str, float] | None = None,
                 stop_share: float = STOP_SHARE) -> Verdict:
    """The verdict after a round.

    Parameters
    ----------
    n_reviewed, n_errors_found : int
        The round's ranked decisions (skips and audits excluded) and the errors among them.
    errors_left : mapping of class name to float
        Estimated errors left among each class's unreviewed samples.
    errors_found : mapping of class name to int
        Errors found in each class so far, this round included.
    samples_left : int
        Unreviewed kept samples of the classes.
    base_rate : float or None
        The hit rate random review would have had in the round (None: errors left / samples left
        after it).
    auroc_change : (change, low, high), optional
        The paired-bootstrap AUROC change of the round (evidence only).
    audits : (reviewed, errors)
        The round's random audits (see :func:`coreclean.sessions.batches.choose_audits`), shown as evidence.
    errors_left_sd : mapping of class name to float, optional
        The standard deviation of a class's estimate where audits measured it: the margin is then
        the larger of it and the Poisson one, and it is shown beside the estimate.
    stop_share : float
        A class is done when its estimated errors left are at most this share of its errors.
    """
    total_left = float(sum(errors_left.values()))
    hit_rate = n_errors_found / n_reviewed if n_reviewed else float("nan")
    if base_rate is None:
        base_rate = total_left / samples_left if samples_left else 0.0
    lift = hit_rate / base_rate if base_rate > 0 and n_reviewed else (float("inf") if n_errors_found else float("nan"))
    share = {name: left / (left + errors_found.get(name, 0)) if left + errors_found.get(name, 0) > 0 else 0.0
             for name, left in errors_left.items()}
    sd = dict(errors_left_sd or {})
    upper = {name: left + max(float(np.sqrt(max(left, 0.0))), sd.get(name, 0.0)) for name, left in errors_left.items()}
    done = [name for name, high in upper.items()
            if high < 1.0 or high <= stop_share * (errors_left[name] + errors_found.get(name, 0))]
    still_finding = bool(n_reviewed) and hit_rate >= 0.5
    stop = len(done) == len(errors_left) and not still_finding
    per_class = ", ".join(f"{name} ~{left:.0f}" + (f" ±{sd[name]:.0f}" if name in sd else "")
                          for name, left in errors_left.items())
    left_text = f"~{total_left:.0f} error{'' if f'{total_left:.0f}' == '1' else 's'} estimated left" + (
        f" ({per_class})" if len(errors_left) > 1 else (f" (±{next(iter(sd.values())):.0f}, one sd from the audits)"
                                                       if sd else ""))
    hit_text = (f"the last round found {n_errors_found} of {n_reviewed} ({hit_rate:.0%}) vs {base_rate:.1%} for "
                "random review" if n_reviewed else "nothing ranked was reviewed in the last round" if audits[0]
                else "nothing reviewed in the last round")
    if audits[0]:
        hit_text += f" (its {audits[0]} random audit{'' if audits[0] == 1 else 's'} found {audits[1]})"
    reasons = []
    if stop:
        head = f"stop: every class is done (at most {stop_share:.0%} of its errors estimated left, with margin)"
        reasons.append(head[6:])
    elif len(done) == len(errors_left):
        head = "go on: few errors are estimated left, but the last round still found many; one more round confirms"
        reasons.append("the last round's hit rate was at least 50%")
    else:
        pending = [name for name in errors_left if name not in done]
        head = f"go on: {', '.join(pending)} still {'holds' if len(pending) == 1 else 'hold'} errors"
        reasons.append(f"more than {stop_share:.0%} of the errors of {', '.join(pending)} are estimated left")
    trend, change_text = None, ""
    if auroc_change is not None and np.all(np.isfinite(auroc_change)):
        change, low, high = auroc_change
        trend = "rising" if low > 0 else ("falling" if high < 0 else "flat")
        change_text = f"; AUROC change {change:+.4f} [{low:+.4f}, {high:+.4f}] ({trend})"
    evidence = {
        "hit_rate": hit_rate, "base_rate": base_rate, "lift": lift, "errors_left": total_left,
        "samples_left": int(samples_left), "n_reviewed": int(n_reviewed), "n_errors_found": int(n_errors_found),
        "audits_reviewed": int(audits[0]), "audit_errors": int(audits[1]), "errors_left_sd_by_class": sd,
        "share_left_by_class": share, "done_classes": done,
        "auroc_change": None if auroc_change is None else float(auroc_change[0]),
        "change_low": None if auroc_change is None else float(auroc_change[1]),
        "change_high": None if auroc_change is None else float(auroc_change[2]),
        "auroc_trend": trend, "reasons": reasons,
    }
    return Verdict(plateau=stop, summary=f"{head}; {left_text}; {hit_text}{change_text}", evidence=evidence)


def errors_left_by_class(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, decided: pd.DataFrame,
                         classes: Sequence[int], *, audit_scores: np.ndarray | None = None,
                         ) -> tuple[dict[int, float], dict[int, int], dict[int, float]]:
    """Estimated label errors among the unreviewed kept samples of each class being cleaned.

    Per class, the sum of its unreviewed kept samples' scores, calibrated on the reviewer's
    verdicts (:mod:`coreclean.sessions.errors_left`); where the session drew random audits of
    the class, corrected by what they found (:func:`~coreclean.sessions.errors_left.audit_corrected_count`).

    Parameters
    ----------
    scores : ndarray of shape (n_samples,)
        What the batches are ranked by (the score, or the partner class's probability).
    labels, weights : ndarray of shape (n_samples,)
        Current labels and weights.
    decided : DataFrame
        The live decisions other than ``skip`` (columns ``idx, action, score`` and, for audits,
        ``old_label``: the class the sample was shown in, and for audits ``audit``).
    classes : sequence of int
        The classes being cleaned.
    audit_scores : ndarray of shape (len(decided),), optional
        Each audit's score now under the label it was drawn with, so its residual is measured on
        the pool's scale (NaN, or not given: its score when shown).

    Returns
    -------
    errors_left : dict of int to float
    samples_left : dict of int to int
        Unreviewed kept samples per class.
    spread : dict of int to float
        The standard deviation of ``errors_left``, for the classes with two audits or more.
    """
    from coreclean.sessions.errors_left import audit_corrected_count, calibrated_error_probabilities

    unreviewed = ~reviewed_rows(decided, labels.size)
    pool = unreviewed & (weights > 0) & np.isin(labels, list(classes))
    shown = decided["score"].to_numpy(np.float64)
    was_error = decided["action"].isin(HIT_ACTIONS).to_numpy()
    audit = audited(decided) & np.isfinite(shown)
    now = shown if audit_scores is None else np.where(np.isfinite(audit_scores), audit_scores, shown)
    shown_in = decided["old_label"].to_numpy(np.float64)
    at_pool_and_audits = calibrated_error_probabilities(
        shown, was_error, np.concatenate([scores[pool], now[audit]]),
        reviewed_classes=np.where(np.isfinite(shown_in), shown_in, -1).astype(np.int64),
        unreviewed_classes=np.concatenate([labels[pool], shown_in[audit].astype(np.int64)]))
    per_sample = np.zeros(labels.size)
    per_sample[pool] = at_pool_and_audits[:int(pool.sum())]
    at_audits = at_pool_and_audits[int(pool.sum()):]
    audit_class = decided.loc[audit, "old_label"].to_numpy(np.int64) if audit.any() else np.zeros(0, np.int64)
    errors, samples, spread = {}, {}, {}
    for c in classes:
        members = pool & (labels == c)
        errors[int(c)] = float(per_sample[members].sum())
        samples[int(c)] = int(members.sum())
        of_class = audit_class == c
        if of_class.sum() >= 2:
            errors[int(c)], spread[int(c)] = audit_corrected_count(errors[int(c)], samples[int(c)],
                                                                   was_error[audit][of_class], at_audits[of_class])
    return errors, samples, spread
