"""``coreclean demo``: the whole workflow on scikit-learn's digits with planted label errors, offline."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from coreclean.cli.argument_types import THREADS_HELP, RenamedOption, non_negative_int, positive_int

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "demo",
        help="clean digits with 10%% planted label errors: coreclean vs random review (offline)",
        description=(
            "Write scikit-learn's digits as PNG files with 10%% of the labels wrong, embed them, pick the classes "
            "to clean, and run a cleaning session with a simulated reviewer twice: ranked by coreclean and in "
            "random order. Prints errors found per round side by side and writes plots. Never downloads."
        ),
    )
    parser.add_argument("--out", default="coreclean-demo", metavar="DIR", help="output folder (default: ./coreclean-demo)")
    parser.add_argument("--weights", metavar="FILE", help="ResNet18 state-dict file (default: torchvision's cached "
                        "ImageNet weights if present, else raw pixels)")
    parser.add_argument("--backbone", help=argparse.SUPPRESS)
    parser.add_argument("--image-size", type=positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=positive_int, default=4, help="review rounds (default: 4)")
    parser.add_argument("--per-class", "--batch", dest="per_class", type=positive_int, default=15,
                        action=RenamedOption, old="--batch", help="reviews per class per round (default: 15)")
    parser.add_argument("--n-classes", "--classes", dest="n_classes", type=positive_int, default=3,
                        action=RenamedOption, old="--classes", help="how many classes to clean (default: 3)")
    parser.add_argument("--noise", type=float, default=0.1, help="share of labels flipped (default: 0.1)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: 0)")
    parser.add_argument("--threads", type=positive_int, default=None, help=THREADS_HELP)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from coreclean.cli.classes_command import format_report
    from coreclean.demo import run_demo

    start = time.perf_counter()

    def on_round(name: str, result: Any) -> None:
        if not args.quiet:
            print(f"  [{name}] round {result.round}: {result.n_errors_found} of {result.n_reviewed} reviewed were errors")

    result = run_demo(args.out, weights=args.weights, backbone=args.backbone, image_size=args.image_size,
                      noise_rate=args.noise, n_classes_to_clean=args.n_classes, batch_size=args.per_class,
                      n_rounds=args.rounds, random_state=args.seed, progress=not args.quiet, on_round=on_round,
                      n_threads=args.threads)
    print(f"embedding: {result.note}")
    print(f"\nwhich class to clean (coreclean classes):\n{format_report(result.report.head(5), cache=str(Path(args.out) / 'cache'))}\n")
    print(f"cleaning {', '.join(result.classes)}: {result.n_errors} planted errors there "
          f"({result.n_errors_total} in all 10 classes); {args.per_class} per class per round\n")
    table = result.comparison.rename(columns={"coreclean_found": "coreclean", "random_found": "random",
                                              "coreclean_verdict": "coreclean verdict"})
    table["random"] = table["random"].map(lambda v: "-" if v != v else f"{int(v)}")
    print("errors found so far (simulated reviewer):")
    print(table.to_string(index=False, max_colwidth=90))
    print()
    for name, path in result.paths.items():
        print(f"{name}: {path}")
    print(f"\ndone in {time.perf_counter() - start:.0f} s. Try: coreclean session status --session "
          f"{result.paths['coreclean_session']}")
    return 0
