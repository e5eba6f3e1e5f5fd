"""Does the neighbour pilot tell a useful graph from a useless one? The check behind ``NEIGHBOR_PILOT_*``.

Above :data:`coreclean.scoring.signal_set.NEIGHBOR_PILOT_ABOVE` samples the ranker builds the
neighbour graph only where a pilot on :data:`~coreclean.scoring.signal_set.NEIGHBOR_PILOT_ROWS`
samples gives the vote a pool weight above
:data:`~coreclean.scoring.signal_set.NEIGHBOR_PILOT_MIN_WEIGHT`. For each data set this ranks with
the full graph (the pilot held off), then records the vote's pool weight on all rows (what the
ranker uses), the pilot's weight (:meth:`SignalSet.neighbor_pilot_weight`), the two AUROCs with and
without the vote, and the stage times. Data: the synthetic set of ``benchmarks.scale`` (whose
neighbours carry no label signal) and the CIFAR-10 MobileNetV2 embeddings with CIFAR-10N aggre and
worse labels.

    python -m benchmarks.neighbor_pilot      # writes benchmarks/results/neighbor_pilot.json and .md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.common import machine_info, write_json
from coreclean._internal.threads import limit_threads
from coreclean.scoring import signal_set
from coreclean.scoring.pooling import LogLinearPool
from coreclean.scoring.ranker import LabelIssueRanker
from coreclean.scoring.signals import self_confidence_score

RESULTS = Path(__file__).resolve().parent / "results"


def measure(name: str, features: np.ndarray, labels: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    """Full-graph ranking of one data set: the vote's pool weight on all rows and in the pilot, AUROC with and without it."""
    start = time.perf_counter()
    with limit_threads(1), mock.patch.object(signal_set, "NEIGHBOR_PILOT_ABOVE", sys.maxsize):
        signals = LabelIssueRanker(random_state=0).fit(features, labels).signals_
        sources = [signals.model_probs, signals.neighbor_probs(signals.config.temperature)]
        with_vote = LogLinearPool().fit(sources, labels, signals.fit_weight)  # as methods.pooled_probs fits it
        without = LogLinearPool().fit(sources[:1], labels, signals.fit_weight)
        pilot_weight = signals.neighbor_pilot_weight()
    is_error = labels != true
    return {"name": name, "n_samples": int(labels.size), "fit_seconds": time.perf_counter() - start,
            "timings": dict(signals.timings), "vote_weight_all_rows": float(with_vote.weights_[1]),
            "vote_weight_pilot": pilot_weight, "pilot_rows": signal_set.NEIGHBOR_PILOT_ROWS,
            "auroc_with_vote": float(roc_auc_score(is_error, self_confidence_score(with_vote.predict_proba(sources), labels))),
            "auroc_without_vote": float(roc_auc_score(is_error, self_confidence_score(without.predict_proba(sources[:1]),
                                                                                       labels)))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=200_000, help="rows of the synthetic set (0: skip it)")
    parser.add_argument("--out", type=Path, default=RESULTS / "neighbor_pilot.json")
    args = parser.parse_args(argv)
    runs = []
    if args.synthetic:
        from benchmarks.scale import WORK, generate

        paths = generate(WORK, args.synthetic, 512, 10, 0.1, 0)
        runs.append(measure(f"synthetic {args.synthetic}", np.load(paths["features"], mmap_mode="r"),
                            np.load(paths["labels"]), np.load(paths["true"])))
        print(runs[-1], file=sys.stderr, flush=True)
    from benchmarks.data import cifar10n_labels, cifar_available, load_cifar10

    if cifar_available():
        data = load_cifar10()
        label_sets = cifar10n_labels(data)
        for noise in ("aggre", "worse"):
            runs.append(measure(f"CIFAR-10 {noise}", data.features, label_sets[noise], label_sets["clean"]))
            print(runs[-1], file=sys.stderr, flush=True)
    results = {"benchmark": "neighbor_pilot", "command": "python -m benchmarks.neighbor_pilot " + " ".join(
        sys.argv[1:] if argv is None else argv), "min_weight": signal_set.NEIGHBOR_PILOT_MIN_WEIGHT,
        "machine": machine_info(), "runs": runs}
    write_json(args.out, results)
    lines = ["# Neighbour pilot: the vote's pool weight on a sample vs on all rows", "",
             f"`{results['command'].strip()}`; the graph is built above the pilot size when the pilot's weight exceeds "
             f"{results['min_weight']}.", "",
             "| data | rows | pilot rows | weight, pilot | weight, all rows | AUROC with vote | without | graph s | pilot s |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['n_samples']} | {r['pilot_rows']} | {r['vote_weight_pilot']:.3f} | "
              f"{r['vote_weight_all_rows']:.3f} | {r['auroc_with_vote']:.4f} | {r['auroc_without_vote']:.4f} | "
              f"{r['timings'].get('neighbors', 0.0):.1f} | {r['timings'].get('neighbor_pilot', 0.0):.1f} |" for r in runs]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
