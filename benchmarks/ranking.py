"""One noisy label set, every ranker, several seeds: the ranking metrics of P2 and P3, aggregated."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from benchmarks.common import TestModel, clean_nan, mean_sd, score_rankers
from coreclean.evaluation.calibration import calibration_report
from coreclean.evaluation.ranking_metrics import errors_found_curve
from coreclean.scoring.methods import DEFAULT_METHOD
from coreclean.scoring.recalibration import shift_to_error_count

logger = logging.getLogger(__name__)

METRIC_KEYS = ("auroc", "average_precision", "precision_at_half_errors", "precision_at_1000", "recall_at_5pct",
               "recall_at_10pct", "seconds", "own_seconds")
CURVE_POINTS = np.r_[0.0, np.linspace(0.005, 0.5, 100)]  # fractions of the data reviewed, for the plots
#: Rankers whose score is a probability that the label is wrong: their calibration is measured.
PROBABILITY_RANKERS = (DEFAULT_METHOD, "pooled_confidence", "self_confidence")
CALIBRATION_KEYS = ("ece", "top_ece", "mce", "expected_errors", "n_errors")
#: The default's P(label wrong) shifted in logit space to the confident joint's error count (no ground truth).
RECALIBRATED = f"{DEFAULT_METHOD} recalibrated"


def evaluate_label_set(features: np.ndarray, clean: np.ndarray, noisy: np.ndarray | list[np.ndarray], *,
                       seeds: list[int], rankers: list[str] | None, n_threads: int | None,
                       test_model: TestModel | None = None, ranker_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score every ranker for each seed on ``noisy`` labels (one array, or one per seed) against ``clean``.

    With ``test_model``: test accuracy/AUROC of the LR trained on noisy labels, on clean labels, and
    on the labels after fixing each ranker's top |errors| (one static pass, a reviewer who knows the truth).
    """
    per_seed: list[dict[str, Any]] = []
    reuse: dict[str, tuple[np.ndarray, float]] = {}
    same_labels = not isinstance(noisy, list)
    for position, seed in enumerate(seeds):
        labels = noisy if same_labels else noisy[position]
        if not same_labels:
            reuse = {}  # the labels differ per seed: nothing to reuse
        is_error = labels != clean
        start = time.perf_counter()
        scored = score_rankers(features, labels, is_error, seed=seed, rankers=rankers, n_threads=n_threads,
                               reuse=reuse, ranker_params=ranker_params)
        n_samples = labels.size
        reviewed = np.round(CURVE_POINTS * n_samples).astype(np.int64)
        entry: dict[str, Any] = {"seed": seed, "n_errors": int(is_error.sum()), "noise_rate": float(is_error.mean()),
                                 "fit_seconds": scored["fit_seconds"], "shared_seconds": scored["shared_seconds"],
                                 "oof_accuracy_vs_given": scored["oof_accuracy_vs_given"],
                                 "estimated_errors": scored["estimated_errors"],
                                 "cleanlab": scored.get("cleanlab"), "rankers": {}}
        for name, result in scored["rankers"].items():
            metrics = dict(result["metrics"])
            metrics["recall_curve"] = (errors_found_curve(result["scores"], is_error, reviewed)
                                       / max(int(is_error.sum()), 1)).round(4).tolist()
            entry["rankers"][name] = metrics
            if name in PROBABILITY_RANKERS:
                entry.setdefault("calibration", {})[name] = calibration_report(result["scores"], is_error)
            if name == DEFAULT_METHOD and 0 < scored["estimated_errors"] < n_samples:
                recalibrated, shift = shift_to_error_count(result["scores"], scored["estimated_errors"])
                entry["calibration"][RECALIBRATED] = {**calibration_report(recalibrated, is_error), "logit_shift": shift}
        if test_model is not None:
            entry["test"] = _static_cleaning(test_model, labels, clean, is_error,
                                             {n: r["scores"] for n, r in scored["rankers"].items()})
        entry["wall_seconds"] = time.perf_counter() - start
        logger.info("seed %d: %s", seed, ", ".join(f"{n} {m['auroc']:.3f}" for n, m in entry["rankers"].items()))
        per_seed.append(entry)
    return clean_nan({"per_seed": per_seed, "summary": summarize(per_seed), "curve_fractions": CURVE_POINTS.tolist()})


def _static_cleaning(test_model: TestModel, noisy: np.ndarray, clean: np.ndarray, is_error: np.ndarray,
                     scores: dict[str, np.ndarray]) -> dict[str, Any]:
    out = {"noisy": test_model.evaluate(noisy), "clean": test_model.evaluate(clean)}
    budget = int(is_error.sum())
    for name, score in scores.items():
        fixed = noisy.copy()
        top = np.argsort(-score, kind="stable")[:budget]
        fixed[top] = clean[top]
        out[f"fix_top_errors:{name}"] = test_model.evaluate(fixed)
    out["note"] = ("LR on standardised features, inverse-class-frequency weights; fix_top_errors:R = labels after a "
                   "reviewer who knows the truth fixes the top |errors| of ranking R")
    return out


def _pooled_calibration(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd over seeds of the calibration numbers, and the reliability bins pooled over seeds."""
    out: dict[str, Any] = {key: mean_sd([r[key] for r in reports]) for key in CALIBRATION_KEYS}
    counts = np.sum([r["bins"]["counts"] for r in reports], axis=0)
    def pooled(field: str) -> list[float | None]:
        values = np.asarray([[np.nan if v is None else v for v in r["bins"][field]] for r in reports])
        weights = np.asarray([r["bins"]["counts"] for r in reports], dtype=np.float64)
        total = np.nansum(values * weights, axis=0)
        return [None if c == 0 else float(t / c) for t, c in zip(total, counts)]
    out["bins"] = {"edges": reports[0]["bins"]["edges"], "counts": counts.tolist(), "mean_prob": pooled("mean_prob"),
                   "error_rate": pooled("error_rate")}
    return out


def summarize(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd over seeds of every metric of every ranker (and of the cleanlab rows)."""
    names = list(per_seed[0]["rankers"])
    summary: dict[str, Any] = {"rankers": {}}
    for name in names:
        summary["rankers"][name] = {key: mean_sd([s["rankers"][name].get(key) for s in per_seed])
                                    for key in METRIC_KEYS}
        curves = np.asarray([s["rankers"][name]["recall_curve"] for s in per_seed], dtype=np.float64)
        summary["rankers"][name]["recall_curve"] = curves.mean(axis=0).round(4).tolist()
    cleanlab = [s.get("cleanlab") for s in per_seed if s.get("cleanlab") and s["cleanlab"].get("available")]
    if cleanlab:
        summary["cleanlab"] = {}
        for row in cleanlab[0]:
            if row == "available":
                continue
            keys = [k for k, v in cleanlab[0][row].items() if isinstance(v, (int, float))]
            summary["cleanlab"][row] = {k: mean_sd([c[row].get(k) for c in cleanlab]) for k in keys}
    if "calibration" in per_seed[0]:
        summary["calibration"] = {name: _pooled_calibration([s["calibration"][name] for s in per_seed])
                                  for name in per_seed[0]["calibration"]}
    if "test" in per_seed[0]:
        summary["test"] = {}
        for row, value in per_seed[0]["test"].items():
            if isinstance(value, dict):
                summary["test"][row] = {k: mean_sd([s["test"][row][k] for s in per_seed])
                                        for k in ("test_accuracy", "test_auroc")}
    for key in ("n_errors", "noise_rate", "oof_accuracy_vs_given", "wall_seconds"):
        summary[key] = mean_sd([s[key] for s in per_seed])
    return summary
