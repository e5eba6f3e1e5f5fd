"""Run the benchmark protocols of docs/benchmarks.md and write their results.

    python -m benchmarks.run P1|P2|P3|all [--seeds 3] [--quick] [--backbone NAME --weights W --image-size S] [--tta flip]

Every ranker of :data:`coreclean.scoring.methods.REGISTRY` runs on the same embeddings, folds and seeds.
Results go to ``benchmarks/results/`` (``--out`` to change): ``p1.json``, ``p2.json``, ``p3.json``,
then the Markdown tables and PNG plots (:mod:`benchmarks.report`, which also refreshes the README
block). ``--quick`` is for development: one seed, fewer rounds, a subset of the work.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS
from benchmarks.data import DEFAULT_WEIGHTS, Backbone
from coreclean.embedding.views import TTA_CHOICES

logger = logging.getLogger("benchmarks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("protocol", choices=["P1", "P2", "P3", "all"], type=str.upper)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ..., N-1); default 3")
    parser.add_argument("--quick", action="store_true", help="development run: 1 seed and a subset of the work")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                        help="weights file, torchvision enum name or DEFAULT (default: the shared MobileNetV2 trunk)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--tta", choices=TTA_CHOICES, default="none",
                        help="embed CIFAR-10 with this test-time augmentation (coreclean embed --tta)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="coreclean cache of the CIFAR-10 train embeddings (default benchmarks/work/cache_cifar10)")
    parser.add_argument("--test-cache-dir", type=Path, default=None,
                        help="cache of the test embeddings (default benchmarks/work/cache_cifar10_test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenMP/BLAS threads in fits (1 is fastest on a busy shared machine)")
    parser.add_argument("--rankers", nargs="*", default=None, help="subset of the registry for P2/P3 (default all)")
    parser.add_argument("--p3-datasets", nargs="*", default=["digits", "cifar10"])
    parser.add_argument("--p3-cifar-size", type=int, default=10_000,
                        help="CIFAR-10 train images used by P3 (stratified subset; 0 = all 50k)")
    parser.add_argument("--p1-methods", nargs="*", default=None, help="P1 session rankers (default: coreclean, "
                        "random, self_confidence, class_leverage)")
    parser.add_argument("--p1-eval-seeds", type=int, default=1,
                        help="P1 seeds that also measure CV and test AUROC every round (costly); default 1")
    parser.add_argument("--p2-session-rounds", type=int, default=20, help="P2 cleaning run: round cap")
    parser.add_argument("--no-report", action="store_true", help="skip regenerating tables, plots and README block")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("coreclean").setLevel(logging.WARNING)
    logging.getLogger("faiss").setLevel(logging.WARNING)
    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    backbone = Backbone(args.backbone, args.weights, args.image_size, tta=args.tta)
    if args.cache_dir is not None:
        backbone.cache_dir = args.cache_dir
    if args.test_cache_dir is not None:
        backbone.test_cache_dir = args.test_cache_dir
    seeds = list(range(1 if args.quick else args.seeds))
    protocols = ["P3", "P2", "P1"] if args.protocol == "ALL" else [args.protocol]
    args.out.mkdir(parents=True, exist_ok=True)

    notes: list[str] = []
    for protocol in protocols:
        start = time.perf_counter()
        logger.info("%s: starting (seeds %s%s)", protocol, seeds, ", quick" if args.quick else "")
        if protocol == "P3":
            from benchmarks import p3

            p3.run(args.out, seeds=seeds, rankers=args.rankers, datasets=tuple(args.p3_datasets), backbone=backbone,
                   cifar_size=2000 if args.quick else args.p3_cifar_size, n_threads=args.threads,
                   command=command)
        elif protocol == "P2":
            from benchmarks import p2

            p2.run(args.out, seeds=seeds, rankers=args.rankers, backbone=backbone,
                   noise_sets=("aggre",) if args.quick else ("aggre", "random1", "worse"),
                   max_rounds=2 if args.quick else args.p2_session_rounds, n_threads=args.threads,
                   command=command, budget_notes=notes + _p2_notes(args, seeds))
        elif protocol == "P1":
            from benchmarks import p1

            methods = tuple(args.p1_methods) if args.p1_methods else (
                ("coreclean", "random") if args.quick else p1.METHODS)
            eval_seeds = seeds[: max(0, args.p1_eval_seeds)]
            p1.run(args.out, seeds=seeds, methods=methods, backbone=backbone, n_rounds=3 if args.quick else 10,
                   eval_seeds=eval_seeds, n_threads=args.threads, command=command,
                   budget_notes=notes + [f"CV AUROC and test AUROC per round measured on seed(s) {eval_seeds} only "
                                         "(each costs 5 + 1 LR fits on 50k x 1280 per round); errors found on every seed. Sessions run "
                                         "with evaluate=False; the CV AUROC comes from benchmarks.common.CVEvaluator "
                                         "(the session evaluator's recipe with coreclean's faster LR)"])
        logger.info("%s: done in %.1f min", protocol, (time.perf_counter() - start) / 60)
    if not args.no_report:
        from benchmarks import report

        report.generate(args.out, args.out.parents[1] / "README.md" if args.out == RESULTS else args.out / "README.md")
    return 0


def _p2_notes(args, seeds) -> list[str]:
    notes = ["end-to-end cleaning: one coreclean session over all ten classes (per-class batches of 50 per round, "
             f"ranked within each class; one session-wide stop rule), seed {seeds[0]} only, evaluate=False (the stop "
             "rule rests on the hit rate and the estimated errors left, not on AUROC)"]
    if args.quick:
        notes.append("--quick: aggre only, 1 seed, 2 cleaning rounds")
    return notes


if __name__ == "__main__":
    raise SystemExit(main())
