"""How strongly should each class's own calibration shift be held to 0? The sweep behind ``CLASS_STRENGTH``.

The errors-left estimate recalibrates the ranker's scores on the reviewer's verdicts
(:func:`coreclean.sessions.errors_left.calibrated_error_probabilities`): a shift shared by all
classes plus one per class, each class's held to 0 by a prior of precision ``CLASS_STRENGTH``. This
replays journey-like sessions without images: for each seed, 300 CIFAR-10 train embeddings a class
(MobileNetV2, :func:`benchmarks.data.load_cifar10`), 8% planted errors as the journey plants them
(:func:`benchmarks.journey_data.plant_errors`, uniform or skewed), the three classes ``classes``
recommends, 20 reviews a class a round for 6 rounds by a simulated reviewer, with both allocations.
From round 2, each class-round counts as within the bar when its estimate is within
``max(5, 30% of the true errors left)`` (#10's bar, :func:`benchmarks.audit_sampling.within_bar`).
Seeds default to 10-14, which the journey benchmark (seeds 0-2) does not use, so the journey stays a check.

    python -m benchmarks.class_shift_sweep     # writes benchmarks/results/class_shift_sweep.json and .md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd

from benchmarks.audit_sampling import within_bar
from benchmarks.common import machine_info, write_json
from benchmarks.data import load_cifar10
from benchmarks.journey_data import CIFAR10_CLASSES, plant_errors
from coreclean.diagnostics.class_report import class_report
from coreclean.embedding.own_features import write_feature_cache
from coreclean.sessions import errors_left
from coreclean.sessions.session import CleaningSession
from coreclean.sessions.state import reviewed_rows
from coreclean.simulate.reviewer import SimulatedReviewer, simulated_rounds

RESULTS = Path(__file__).resolve().parent / "results"
ALLOCATIONS = ("errors", "fixed")


def replay(cache: str, true: np.ndarray, classes: list[str], allocation: str, *, rounds: int,
           batch: int) -> list[dict[str, Any]]:
    """One session of ``rounds`` rounds: per class and round from round 2, the estimate and the true errors left."""
    rows = []
    with CleaningSession.start(cache, ":memory:", classes=classes, batch_size=batch, allocation=allocation,
                               evaluate=False, random_state=0, n_threads=1) as session:
        reviewer = SimulatedReviewer(session.sample_ids, true, session.class_names)
        for result in simulated_rounds(session, reviewer, rounds):
            if result.round < 2:
                continue
            reviewed = reviewed_rows(session.live_decisions(), true.size)
            wrong = (session.labels != true) & (session.weights > 0) & ~reviewed
            for name in classes:
                truth = int((wrong & (session.labels == session.class_names.index(name))).sum())
                rows.append({"round": result.round, "class": name, "true": truth,
                             "estimate": float(result.errors_left_by_class[name])})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strengths", type=float, nargs="+", default=[1e12, 0.5, 2.0, 10.0, 50.0],
                        help="precisions to try (1e12: no class shift)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12, 13, 14])
    parser.add_argument("--skews", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS / "class_shift_sweep.json")
    args = parser.parse_args(argv)
    data = load_cifar10()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="class-shift-") as work:
        for skew in args.skews:
            for seed in args.seeds:
                rng = np.random.default_rng(seed)
                chosen = np.sort(np.concatenate([rng.choice(np.flatnonzero(data.labels == k), args.per_class,
                                                            replace=False) for k in range(len(CIFAR10_CLASSES))]))
                true = data.labels[chosen]
                given, _ = plant_errors(true, 0.08, skew, rng)
                root = Path(work) / f"seed{seed}-skew{skew:g}"
                root.mkdir()
                manifest = pd.DataFrame({"path": [f"img/{i:05d}.jpg" for i in range(true.size)],
                                         "label": [CIFAR10_CLASSES[k] for k in given]})
                cache = str(root / "cache")
                write_feature_cache(cache, data.features[chosen], manifest, name="sweep")
                classes = list(class_report(data.features[chosen], given, class_names=list(CIFAR10_CLASSES),
                                            n_threads=1)["class"][:3])
                for strength in args.strengths:
                    for allocation in ALLOCATIONS:
                        with mock.patch.object(errors_left, "CLASS_STRENGTH", strength):
                            found = replay(cache, true, classes, allocation, rounds=args.rounds, batch=args.batch)
                        within = sum(within_bar(r["estimate"], r["true"]) for r in found)
                        rows += [dict(r, skew=skew, seed=seed, strength=strength, allocation=allocation) for r in found]
                        print(f"skew {skew:g} seed {seed} strength {strength:g} {allocation}: "
                              f"{within}/{len(found)} within the bar", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    table["within"] = [within_bar(e, t) for e, t in zip(table["estimate"], table["true"])]
    summary = table.groupby(["skew", "strength"])["within"].agg(["sum", "count"]).reset_index()
    results = {"benchmark": "class_shift_sweep",
               "command": "python -m benchmarks.class_shift_sweep " + shlex.join(sys.argv[1:] if argv is None else argv),
               "chosen_in_code": errors_left.CLASS_STRENGTH, "machine": machine_info(),
               "summary": summary.to_dict("records"), "rows": rows}
    write_json(args.out, results)
    _write_markdown(results, summary, args.out.with_suffix(".md"))
    print(summary.to_string(index=False))
    return 0


def _write_markdown(results: dict[str, Any], summary: pd.DataFrame, path: Path) -> None:
    strengths = sorted(summary["strength"].unique())
    lines = ["# Per-class calibration shift sweep (errors left, journey-like sessions)", "",
             f"`{results['command']}`. Class-rounds (from round 2, both allocations, all seeds) whose errors-left "
             "estimate is within max(5, 30% of the true count). Strength: precision of the prior holding each "
             f"class's own shift to 0 (1e12: no class shift). In the code: **{results['chosen_in_code']:g}**.", "",
             "| skew | " + " | ".join(f"{s:g}" for s in strengths) + " |", "|---|" + "---|" * len(strengths)]
    for skew, of_skew in summary.groupby("skew"):
        cells = {row.strength: f"{row.sum} / {row.count}" for row in of_skew.itertuples()}
        lines.append(f"| {skew:g} | " + " | ".join(cells.get(s, "") for s in strengths) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
