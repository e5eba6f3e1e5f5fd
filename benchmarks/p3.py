"""P3: synthetic noise (10% and 20% uniform, 10% class-conditional pair flips; 0.5% and 1% of both) on digits and CIFAR-10.

Every ranker of :data:`coreclean.scoring.methods.REGISTRY` on the same signals per seed; the noise is drawn
with the seed too, so each seed is a fresh noisy label set. Metrics as in P2 (AUROC, AP, P@|E|/2,
P@1000, recall at 5%/10% reviewed), cleanlab on the same out-of-fold probabilities, and the test
accuracy of an LR after fixing each ranker's top |errors| (static, one pass).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import TestModel, machine_info, write_json
from benchmarks.data import Backbone, Dataset, cifar_available, load_cifar10, load_digits_dataset
from benchmarks.ranking import evaluate_label_set
from coreclean.simulate.noise import inject_noise

logger = logging.getLogger(__name__)

NOISE_SETTINGS = {"uniform10": ("uniform", 0.10), "uniform20": ("uniform", 0.20), "pairs10": ("pairs", 0.10),
                  "uniform0.5": ("uniform", 0.005), "uniform1": ("uniform", 0.01), "pairs0.5": ("pairs", 0.005),
                  "pairs1": ("pairs", 0.01)}
#: Settings with so few errors that one seed says little: run with at least ``LOW_NOISE_SEEDS`` seeds.
LOW_NOISE = ("uniform0.5", "uniform1", "pairs0.5", "pairs1")
LOW_NOISE_SEEDS = 10


def cifar_subset(dataset: Dataset, n_samples: int, *, random_state: int = 0) -> Dataset:
    """A fixed stratified subset of the CIFAR-10 train rows (the whole set when ``n_samples`` >= 50k or 0)."""
    if n_samples <= 0 or n_samples >= dataset.labels.size:
        return dataset
    rng = np.random.default_rng(random_state)
    per_class = n_samples // dataset.n_classes
    rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(dataset.labels == c), per_class, replace=False)
                                   for c in range(dataset.n_classes)]))
    return Dataset(name=f"cifar10[{rows.size}]", features=np.ascontiguousarray(dataset.features[rows]),
                   labels=dataset.labels[rows], class_names=dataset.class_names, test_features=dataset.test_features,
                   test_labels=dataset.test_labels, backbone=dataset.backbone,
                   notes=[f"fixed stratified subset of {rows.size} CIFAR-10 train images (seed {random_state})"])


def run(out_dir: Path, *, seeds: list[int], rankers: list[str] | None = None, datasets: tuple[str, ...] = ("digits", "cifar10"),
        backbone: Backbone | None = None, cifar_size: int = 10_000, n_threads: int | None = 1,
        noise: tuple[str, ...] = tuple(NOISE_SETTINGS), command: str = "") -> dict[str, Any]:
    """Run P3 and write ``p3.json`` (+ ``p3.md`` and ``p3.png`` via the report helpers) into ``out_dir``.

    The low-noise settings (:data:`LOW_NOISE`) run on at least :data:`LOW_NOISE_SEEDS` seeds (0, 1, ...):
    at 0.5 % digits holds 6 errors, and one seed says little.
    """
    start = time.perf_counter()
    results: dict[str, Any] = {"protocol": "P3", "command": command, "seeds": seeds, "machine_start": machine_info(),
                               "datasets": {}, "notes": []}
    for name in datasets:
        if name == "digits":
            dataset = load_digits_dataset()
        elif name == "cifar10":
            if not cifar_available():
                results["notes"].append("CIFAR-10 skipped: ../shared/data/cifar10 is absent")
                continue
            dataset = cifar_subset(load_cifar10(backbone), cifar_size)
        else:
            raise ValueError(f"unknown dataset {name!r}")
        dataset_start = time.perf_counter()
        test_model = TestModel(dataset.features, dataset.test_features, dataset.test_labels, n_classes=dataset.n_classes,
                               n_threads=n_threads)
        entry: dict[str, Any] = {"name": dataset.name, "backbone": dataset.backbone, "n_samples": int(dataset.labels.size),
                                 "n_test": int(dataset.test_labels.size), "notes": dataset.notes, "noise": {}}
        for setting in noise:
            kind, rate = NOISE_SETTINGS[setting]
            setting_seeds = list(range(LOW_NOISE_SEEDS)) if setting in LOW_NOISE and len(seeds) < LOW_NOISE_SEEDS else seeds
            noisy = [inject_noise(dataset.labels, rate=rate, kind=kind, n_classes=dataset.n_classes,
                                  random_state=1000 + seed)[0] for seed in setting_seeds]
            logger.info("P3 %s %s", dataset.name, setting)
            entry["noise"][setting] = {"kind": kind, "rate": rate, "noise_seeds": [1000 + s for s in setting_seeds],
                                       **evaluate_label_set(dataset.features, dataset.labels, noisy, seeds=setting_seeds,
                                                            rankers=rankers, n_threads=n_threads, test_model=test_model)}
        entry["wall_seconds"] = time.perf_counter() - dataset_start
        results["datasets"][name] = entry
    results["wall_seconds"] = time.perf_counter() - start
    results["machine_end"] = machine_info()
    write_json(out_dir / "p3.json", results)
    return results
