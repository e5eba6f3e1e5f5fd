"""Report rows for P2/P3 beyond the ranking tables: the default against every ranker with intervals, and calibration.

- :func:`goal_rows`: per goal metric, the default's margin over each other ranker with a 95 % interval
  (paired bootstrap over seeds of the per-seed differences); a goal counts as met when the margin is
  >= 0 or the interval reaches 0 (a tie within the noise of the seeds).
- :func:`calibration_rows`: ECE, top-10 % ECE, MCE and expected vs actual errors of the rankers whose
  score claims to be P(label wrong) (:data:`benchmarks.ranking.PROBABILITY_RANKERS`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from coreclean.scoring.methods import DEFAULT_METHOD

GOAL_METRICS = (("auroc", "AUROC"), ("precision_at_half_errors", "P@|E|/2"))
ECE_GOAL, TOP_ECE_GOAL = 0.05, 0.10
_BOOTSTRAP = 2000


def paired_interval(differences: list[float], *, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-seed differences and its 95 % percentile-bootstrap interval (the mean twice when one seed)."""
    values = np.asarray(differences, dtype=np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(_BOOTSTRAP, values.size))].mean(axis=1)
    return mean, float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def goal_check(per_seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each goal metric and each other ranker: the default's paired margin, its interval and whether it is met."""
    out = []
    names = [n for n in per_seed[0]["rankers"] if n != DEFAULT_METHOD]
    if DEFAULT_METHOD not in per_seed[0]["rankers"]:
        return out
    for key, label in GOAL_METRICS:
        for name in names:
            diffs = [s["rankers"][DEFAULT_METHOD][key] - s["rankers"][name][key] for s in per_seed
                     if s["rankers"][name].get(key) is not None and s["rankers"][DEFAULT_METHOD].get(key) is not None]
            if not diffs:
                continue
            mean, low, high = paired_interval(diffs)
            out.append({"metric": label, "other": name, "margin": mean, "low": low, "high": high,
                        "met": mean >= 0 or high >= 0, "tie": mean < 0 <= high})
    return out


def goal_rows(per_seed: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """Markdown: the closest other ranker per goal metric, the margin with its interval, and the verdict."""
    checks = goal_check(per_seed)
    lines = ["| metric | closest other ranker | default − other (95% interval over seeds) | verdict |",
             "|---|---|---|---|"]
    all_met = True
    for _, label in GOAL_METRICS:
        rows = [c for c in checks if c["metric"] == label]
        if not rows:
            continue
        worst = min(rows, key=lambda c: c["margin"])
        met = all(c["met"] for c in rows)
        all_met &= met
        verdict = "met" if met and not any(c["tie"] for c in rows) else ("met (tie within interval)" if met else "**missed**")
        lines.append(f"| {label} | {worst['other']} | {worst['margin']:+.4f} [{worst['low']:+.4f}, {worst['high']:+.4f}] "
                     f"| {verdict} |")
    return lines, all_met


def calibration_rows(summary: dict[str, Any]) -> list[str]:
    """Markdown table of the calibration of every ranker that claims P(label wrong), mean ± sd over seeds."""
    calibration = summary.get("calibration")
    if not calibration:
        return []
    lines = [f"Calibration of P(label wrong) (10 equal-width bins; goals ECE ≤ {ECE_GOAL}, top-10% ECE ≤ {TOP_ECE_GOAL}):",
             "", "| ranker | ECE | top-10% ECE | MCE | expected errors (sum of P) | actual errors |", "|---|---|---|---|---|---|"]
    notes = ["", "`coreclean recalibrated`: the same scores shifted by one logit offset so that they sum to the confident "
             "joint's error count on the out-of-fold probabilities (given labels only, no ground truth); same ranking."]
    for name, entry in calibration.items():
        lines.append(f"| {name} | {format_mean_sd(entry['ece'])} | {format_mean_sd(entry['top_ece'])} | {format_mean_sd(entry['mce'])} | "
                     f"{format_mean_sd(entry['expected_errors'], 1)} | {format_mean_sd(entry['n_errors'], 0)} |")
    return lines + (notes if any(" recalibrated" in name for name in calibration) else [])


def format_mean_sd(entry: dict[str, Any] | None, digits: int = 3) -> str:
    """``mean ± sd`` of a :func:`benchmarks.common.mean_sd` entry (the mean alone for one value; – for none)."""
    if not entry or entry.get("mean") is None:
        return "–"
    if entry.get("n", 1) > 1:
        return f"{entry['mean']:.{digits}f} ± {entry['sd']:.{digits}f}"
    return f"{entry['mean']:.{digits}f}"
