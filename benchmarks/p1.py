"""P1: the DataHeroes protocol on CIFAR-10 (confusable pairs), through cleaning sessions.

1. An LR (inverse-class-frequency weights) fitted on the clean train labels; the 3 largest
   off-diagonal cells of the row-normalised *test* confusion matrix give the pairs a -> b.
2. For each pair, 200 random train samples of class a are labelled b (600 errors); the seed draws them.
3. One :class:`coreclean.CleaningSession` per ranker (``method=``) over the target classes b, with
   99 reviews per round (33 per target class), 10 rounds; a simulated reviewer relabels to the truth
   and the session updates its ranking after each round.
4. Per round: errors found (cumulative), hit rate, the session's update wall time, and on the
   evaluated seeds the CV AUROC on the current labels (5 fixed folds, the session evaluator's recipe
   fitted with coreclean's fast LR: :class:`benchmarks.common.CVEvaluator`) and the test AUROC /
   accuracy of an LR refitted on the current labels.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import CVEvaluator, TestModel, clean_nan, machine_info, mean_sd, write_json
from benchmarks.data import Backbone, load_cifar10
from coreclean.scoring.linear.folds import make_folds

logger = logging.getLogger(__name__)

METHODS = ("coreclean", "coreclean+budget", "random", "self_confidence", "class_leverage")
"""Rankers compared; ``+budget`` runs the same ranker with each round's 99 reviews split by estimated errors
left (the session default) instead of the protocol's fixed 33 per class: a row of its own."""
DATAHEROES = {"reviewed": [99, 396, 990], "coreset": [30, 111, 199], "random": [2, 16, 39]}
GOALS = {"found_at_99": 60, "found_at_396": 250, "found_at_990": 400, "found_at_990_stretch": 500}


def confusable_pairs(test_model: TestModel, clean: np.ndarray, n_classes: int, n_pairs: int = 3) -> dict[str, Any]:
    """The ``n_pairs`` largest off-diagonal cells (true a -> predicted b) of the normalised test confusion matrix."""
    model = test_model.fit(clean)
    predicted = test_model.predict_proba(model).argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes))
    np.add.at(confusion, (test_model.test_labels, predicted), 1.0)
    normalised = confusion / confusion.sum(axis=1, keepdims=True)
    off = normalised.copy()
    np.fill_diagonal(off, -1.0)
    flat = np.argsort(-off, axis=None, kind="stable")[:n_pairs]
    pairs = [tuple(int(v) for v in np.unravel_index(i, off.shape)) for i in flat]
    return {"pairs": pairs, "cells": [float(normalised[a, b]) for a, b in pairs],
            "test_accuracy_clean": float((predicted == test_model.test_labels).mean())}


def flip_protocol(clean: np.ndarray, pairs: list[tuple[int, int]], n_per_pair: int, seed: int) -> np.ndarray:
    """Label ``n_per_pair`` random, not yet flipped samples of each source class a as b."""
    rng = np.random.default_rng(seed)
    noisy = clean.copy()
    for source, target in pairs:
        members = np.flatnonzero((clean == source) & (noisy == clean))
        noisy[rng.choice(members, size=n_per_pair, replace=False)] = target
    return noisy


def session_run(dataset, noisy: np.ndarray, clean: np.ndarray, targets: list[int], *, method: str, seed: int,
                n_rounds: int, per_class: int, test_model: TestModel | None, cv: CVEvaluator | None,
                n_threads: int | None) -> dict[str, Any]:
    from coreclean.sessions.session import CleaningSession
    from coreclean.simulate.reviewer import SimulatedReviewer, simulated_rounds

    start = time.perf_counter()
    names = [dataset.class_names[t] for t in targets]
    rounds: list[dict[str, Any]] = []
    ranker, _, variant = method.partition("+")
    with CleaningSession.start(dataset.cache_dir, ":memory:", classes=names, batch_size=per_class, method=ranker,
                               allocation="errors" if variant == "budget" else "fixed", evaluate=False, labels=noisy,
                               key=dataset.cache_key, random_state=seed, n_threads=n_threads) as session:
        fit_seconds = time.perf_counter() - start
        reviewer = SimulatedReviewer(session.sample_ids, clean, session.class_names)
        round0 = {"round": 0, "reviewed": 0, "found": 0, "hit_rate": None, "update_seconds": fit_seconds}
        round0.update(_measure(test_model, cv, noisy, np.ones(noisy.size)))
        rounds.append(round0)
        found = reviewed = 0
        for result in simulated_rounds(session, reviewer, n_rounds):
            found += result.n_errors_found
            reviewed += result.n_reviewed
            row = {"round": result.round, "reviewed": reviewed, "found": found, "hit_rate": result.hit_rate,
                   "update_seconds": result.update_seconds, "verdict": result.verdict.summary}
            row.update(_measure(test_model, cv, session.labels, session.weights))
            rounds.append(row)
            logger.info("P1 %s seed %d round %d: %d/%d found (%.1f s update)", method, seed, result.round, found,
                        reviewed, result.update_seconds)
    return {"method": method, "seed": seed, "rounds": rounds, "reviewed": [r["reviewed"] for r in rounds[1:]],
            "found": [r["found"] for r in rounds[1:]], "fit_seconds": fit_seconds,
            "wall_seconds": time.perf_counter() - start}


def _measure(test_model: TestModel | None, cv: CVEvaluator | None, labels: np.ndarray,
             weights: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cv is not None:
        result = cv.evaluate(labels, weights)
        out.update({"cv_auroc": result["cv_auroc"], "cv_seconds": result["seconds"]})
    if test_model is not None:
        result = test_model.evaluate(labels, weights)
        out.update({"test_auroc": result["test_auroc"], "test_accuracy": result["test_accuracy"],
                    "test_seconds": result["seconds"]})
    return out


def run(out_dir: Path, *, seeds: list[int], methods: tuple[str, ...] = METHODS, backbone: Backbone | None = None,
        n_rounds: int = 10, per_round: int = 99, n_per_pair: int = 200, eval_seeds: list[int] | None = None,
        n_threads: int | None = 1, command: str = "", budget_notes: list[str] | None = None) -> dict[str, Any]:
    """Run P1 and write ``p1.json`` into ``out_dir``."""
    start = time.perf_counter()
    dataset = load_cifar10(backbone)
    clean = dataset.labels
    test_model = TestModel(dataset.features, dataset.test_features, dataset.test_labels, n_classes=dataset.n_classes,
                           n_threads=n_threads)
    chosen = confusable_pairs(test_model, clean, dataset.n_classes)
    pairs = chosen["pairs"]
    targets = list(dict.fromkeys(b for _, b in pairs))
    per_class = per_round // len(targets)
    eval_seeds = seeds[:1] if eval_seeds is None else eval_seeds
    names = dataset.class_names
    results: dict[str, Any] = {
        "protocol": "P1", "command": command, "backbone": dataset.backbone, "seeds": seeds, "eval_seeds": eval_seeds,
        "machine_start": machine_info(), "notes": list(budget_notes or []),
        "pairs": [{"true": names[a], "labelled": names[b], "test_confusion": c}
                  for (a, b), c in zip(pairs, chosen["cells"])],
        "target_classes": [names[t] for t in targets], "per_class_per_round": per_class, "n_rounds": n_rounds,
        "n_errors": n_per_pair * len(pairs), "dataheroes": DATAHEROES, "goals": GOALS, "runs": [], "rankers": {},
    }
    noisy_by_seed = {seed: flip_protocol(clean, pairs, n_per_pair, 1000 + seed) for seed in seeds}
    results["noise_seeds"] = [1000 + s for s in seeds]
    results["test_clean_labels"] = test_model.evaluate(clean)
    for method in methods:
        for seed in seeds:
            evaluate = seed in eval_seeds
            cv = None
            if evaluate:
                folds = make_folds(noisy_by_seed[seed], 5, random_state=seed)
                cv = CVEvaluator(dataset.features, folds, n_classes=dataset.n_classes, n_threads=n_threads)
            run_result = session_run(dataset, noisy_by_seed[seed], clean, targets, method=method, seed=seed,
                                     n_rounds=n_rounds, per_class=per_class, cv=cv,
                                     test_model=test_model if evaluate else None, n_threads=n_threads)
            results["runs"].append(run_result)
            results["rankers"] = _aggregate(results["runs"])
            results["wall_seconds"] = time.perf_counter() - start
            write_json(out_dir / "p1.json", clean_nan(results))  # partial results survive a kill
    results["wall_seconds"] = time.perf_counter() - start
    results["machine_end"] = machine_info()
    write_json(out_dir / "p1.json", clean_nan(results))
    return results


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per ranker: cumulative ``reviewed`` / ``found`` per round (mean over seeds) and the per-seed lists."""
    out: dict[str, Any] = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        n = min(len(r["found"]) for r in mine)
        found = np.asarray([r["found"][:n] for r in mine], dtype=np.float64)
        out[method] = {
            "reviewed": mine[0]["reviewed"][:n],
            "found": found.mean(axis=0).round(2).tolist(),
            "found_sd": (found.std(axis=0, ddof=1) if len(mine) > 1 else np.zeros(n)).round(2).tolist(),
            "per_seed": {str(r["seed"]): {"reviewed": r["reviewed"], "found": r["found"]} for r in mine},
            "update_seconds": mean_sd([x["update_seconds"] for r in mine for x in r["rounds"][1:]]),
            "fit_seconds": mean_sd([r["fit_seconds"] for r in mine]),
            "wall_seconds": mean_sd([r["wall_seconds"] for r in mine]),
        }
    return out
