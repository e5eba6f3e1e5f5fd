"""P2: real human label noise (CIFAR-10N ``aggre``, ``random1``, ``worse``) on the 50k CIFAR-10 train embeddings.

Part 1, ranking: every ranker on the same signals per seed (the noise is fixed, the seed moves the
folds, the kNN index sample and the random ranker): AUROC and AP of the ranking for "label is
wrong", precision at |errors|/2 and at 1000, recall at 5% and 10% reviewed, wall time; cleanlab's
``find_label_issues`` on the same out-of-fold probabilities.

Part 2, end to end: a :class:`coreclean.CleaningSession` over all ten classes (a batch of N = 50 per
class per round, ranked within each class), a simulated reviewer who relabels to the truth, until
the session's stop rule fires (cap 20 rounds); errors fixed per image reviewed, and the test
accuracy / AUROC of an LR trained on the cleaned labels against noisy and clean labels.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import TestModel, clean_nan, machine_info, write_json
from benchmarks.data import CIFAR10N_SETS, Backbone, cifar10n_labels, load_cifar10
from benchmarks.ranking import evaluate_label_set

logger = logging.getLogger(__name__)


def cleaning_run(dataset, noisy: np.ndarray, clean: np.ndarray, test_model: TestModel, *, method: str, seed: int,
                 batch_size: int = 50, max_rounds: int = 20, n_threads: int | None = 1) -> dict[str, Any]:
    """One session over all classes until the stop rule fires; rounds, totals and the test LR on the result.

    The session is started as ``session start`` leaves a user: when its note suggests random audits
    (:func:`coreclean.sessions.errors_left.suggested_audits`), it is started again with them, as the
    note says to; ``audit`` in the result is the count it ran with.
    """
    from coreclean.sessions.errors_left import suggested_audits
    from coreclean.sessions.session import CleaningSession
    from coreclean.simulate.reviewer import SimulatedReviewer

    def started(audit: int) -> CleaningSession:
        return CleaningSession.start(dataset.cache_dir, ":memory:", classes=list(dataset.class_names),
                                     batch_size=batch_size, method=method, evaluate=False, labels=noisy,
                                     key=dataset.cache_key, random_state=seed, n_threads=n_threads, audit=audit)

    start = time.perf_counter()
    rounds = []
    stopped_by = "round cap"
    session = started(0)
    audit = suggested_audits(float(session.rounds().iloc[0]["base_rate"]), session.audit)
    if audit:
        logger.info("P2 session %s: the start suggests --audit %d; started again with it", method, audit)
        session.close()
        session = started(audit)
    with session:
        fit_seconds = time.perf_counter() - start
        reviewer = SimulatedReviewer(session.sample_ids, clean, session.class_names)
        found_total = reviewed_total = 0
        for _ in range(max_rounds):
            batch = session.next_batch()
            if batch.empty:
                stopped_by = "nothing left"
                break
            session.apply(reviewer.review(batch))
            result = session.close_round()
            reviewed_total += result.n_reviewed
            found_total += result.n_errors_found
            rounds.append({"round": result.round, "reviewed": reviewed_total, "found": found_total,
                           "hit_rate": result.hit_rate, "errors_left_estimate": result.errors_left,
                           "errors_left_true": int(((session.labels != clean) & (session.weights > 0)).sum()),
                           "errors_left_by_class": _errors_left_by_class(session, clean, result),
                           "base_rate": result.base_rate, "update_seconds": result.update_seconds,
                           "plateau": bool(result.verdict.plateau), "verdict": result.verdict.summary})
            logger.info("P2 session %s round %d: %d/%d found, %s", method, result.round, result.n_errors_found,
                        result.n_reviewed, result.verdict.summary)
            if result.verdict.plateau:
                stopped_by = "stop rule (plateau verdict)"
                break
        labels, weights = session.labels, session.weights
    n_errors = int((noisy != clean).sum())
    remaining = int((labels != clean).sum())
    out = {"method": method, "seed": seed, "batch_size_per_class": batch_size, "audit": audit, "max_rounds": max_rounds,
           "stopped_by": stopped_by, "rounds": rounds, "n_errors_start": n_errors, "n_errors_left": remaining,
           "reviewed": reviewed_total, "fixed": n_errors - remaining,
           "fixed_per_reviewed": (n_errors - remaining) / reviewed_total if reviewed_total else None,
           "base_rate_random": n_errors / noisy.size, "fit_seconds": fit_seconds,
           "test_cleaned": test_model.evaluate(labels, weights), "wall_seconds": time.perf_counter() - start}
    return out


def _errors_left_by_class(session, clean: np.ndarray, result) -> dict[str, dict[str, float]]:
    """Per class: the session's estimate of the errors left and the true count among its unreviewed kept samples."""
    from coreclean.sessions.state import reviewed_rows

    reviewed = reviewed_rows(session.live_decisions(), clean.size)
    wrong = (session.labels != clean) & (session.weights > 0) & ~reviewed
    return {name: {"estimated": float(result.errors_left_by_class[name]),
                   "true": int((wrong & (session.labels == k)).sum())}
            for k, name in enumerate(session.class_names) if name in result.errors_left_by_class}


def run(out_dir: Path, *, seeds: list[int], rankers: list[str] | None = None, backbone: Backbone | None = None,
        noise_sets: tuple[str, ...] = tuple(CIFAR10N_SETS), session_seeds: list[int] | None = None,
        session_methods: tuple[str, ...] = ("coreclean",), max_rounds: int = 20, n_threads: int | None = 1,
        command: str = "", budget_notes: list[str] | None = None) -> dict[str, Any]:
    """Run P2 and write ``p2.json`` into ``out_dir``."""
    start = time.perf_counter()
    dataset = load_cifar10(backbone)
    label_sets = cifar10n_labels(dataset)
    clean = label_sets["clean"]
    test_model = TestModel(dataset.features, dataset.test_features, dataset.test_labels, n_classes=dataset.n_classes,
                           n_threads=n_threads)
    reference = {"clean": test_model.evaluate(clean)}
    results: dict[str, Any] = {"protocol": "P2", "command": command, "backbone": dataset.backbone, "seeds": seeds,
                               "n_samples": int(clean.size), "n_test": int(dataset.test_labels.size),
                               "machine_start": machine_info(), "notes": list(budget_notes or []),
                               "test_clean_labels": reference["clean"], "noise": {}}
    session_seeds = seeds[:1] if session_seeds is None else session_seeds
    for name in noise_sets:
        noisy = label_sets[name]
        set_start = time.perf_counter()
        logger.info("P2 %s: %.1f%% wrong", name, 100 * (noisy != clean).mean())
        entry = evaluate_label_set(dataset.features, clean, noisy, seeds=seeds, rankers=rankers, n_threads=n_threads)
        entry["label_array"] = CIFAR10N_SETS[name]
        entry["test_noisy_labels"] = test_model.evaluate(noisy)
        entry["test_clean_labels"] = reference["clean"]
        entry["ranking_wall_seconds"] = time.perf_counter() - set_start
        entry["cleaning"] = [cleaning_run(dataset, noisy, clean, test_model, method=method, seed=seed,
                                          max_rounds=max_rounds, n_threads=n_threads)
                             for method in session_methods for seed in session_seeds]
        entry["wall_seconds"] = time.perf_counter() - set_start
        results["noise"][name] = entry
        results["wall_seconds"] = time.perf_counter() - start
        write_json(out_dir / "p2.json", clean_nan(results))  # partial results survive a kill
    results["wall_seconds"] = time.perf_counter() - start
    results["machine_end"] = machine_info()
    write_json(out_dir / "p2.json", clean_nan(results))
    return results
