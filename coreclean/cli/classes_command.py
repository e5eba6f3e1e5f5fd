"""``coreclean classes``: which class to clean first (accuracy, AUROC, most-confused partner, estimated errors)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from coreclean.cli.argument_types import THREADS_HELP, non_negative_int, positive_int

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``classes`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "classes",
        help="rank classes by how much cleaning they need",
        description=(
            "Fit a cross-validated logistic regression on the cached embeddings and print, per class, its "
            "accuracy, one-vs-rest AUROC, the class it is most confused with and the estimated number of "
            "label errors. The first row is the class to clean first."
        ),
    )
    parser.add_argument("--cache", required=True, metavar="DIR", help="cache folder written by `coreclean embed`")
    parser.add_argument("--key", default=None, help="embedding set key (needed when the cache holds several; the error lists them)")
    parser.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds (default: 5)")
    parser.add_argument("--C", type=float, default=0.01, dest="C", help="inverse L2 strength (default: 0.01)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="fold seed (default: 0)")
    parser.add_argument("--threads", type=positive_int, default=None, help=THREADS_HELP)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    output.add_argument("--csv", metavar="FILE", help="also write the table as CSV to FILE ('-' for stdout)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from coreclean._internal.progress import Progress
    from coreclean.diagnostics.class_report import class_report
    from coreclean.embedding.cache import derived_dir, load_embeddings, read_cache_info

    with Progress("classes", phases=2, enabled=False if getattr(args, "quiet", False) else None) as progress:
        with progress.phase("loading embeddings"):
            key = read_cache_info(args.cache, key=args.key)["key"]
            embeddings = load_embeddings(args.cache, key=key)
        populated = sorted({embeddings.class_names[k] for k in set(embeddings.labels.tolist())})
        if len(populated) < 2:  # issue 11 #19: one class has no partner to be confused with
            print(f"only class {populated[0] if populated else ''!r} has samples: coreclean finds wrong labels as "
                  "confusions between classes, so a single class cannot be cleaned by this method; embed a dataset "
                  "with at least two classes.")
            return 0
        with progress.phase(f"cross-validating {embeddings.labels.size} samples ({args.folds} folds)"):
            report = class_report(embeddings.features, embeddings.labels, class_names=embeddings.class_names,
                                  n_folds=args.folds, C=args.C, random_state=args.seed, n_threads=args.threads,
                                  memory=str(derived_dir(args.cache, key)))
    if args.json:
        print(json.dumps(report.to_dict(orient="records"), indent=2, ensure_ascii=False))
        return 0
    if args.csv == "-":
        print(report.to_csv(index=False), end="")
        return 0
    print(format_report(report, cache=args.cache, key=args.key))
    if args.csv:
        report.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def format_report(report, *, cache: str | None = None, key: str | None = None) -> str:
    """The report as an aligned text table, with a hint naming the class to clean first and what its counts are.

    Given the ``cache`` folder (and ``key``, where one was needed), the hint ends with the
    ``coreclean session start`` command that cleans that class, ready to run; without, with ``...``.
    """
    shown = report.copy()
    shown["accuracy"] = shown["accuracy"].map("{:.3f}".format)
    shown["auroc"] = shown["auroc"].map("{:.4f}".format)
    shown["confusion_rate"] = shown["confusion_rate"].map("{:.1%}".format)
    shown["estimated_errors"] = shown["estimated_errors"].map("{:.0f}".format)
    shown["estimated_error_rate"] = shown["estimated_error_rate"].map("{:.1%}".format)
    shown = shown.rename(columns={"confusion_rate": "confused_%", "estimated_errors": "est_errors",
                                  "estimated_error_rate": "est_error_%"})
    first = report.iloc[0]
    hint = (f"\nclean first: {first['class']!r} (~{first['estimated_errors']:.0f} errors, most confused with "
            f"{first['confused_with']!r}): {_start_command(first['class'], cache, key)}"
            "\nest_errors is the ranker's own count before any review: it orders the classes, but can be off "
            "several-fold (README, 'what a score means'); in a session the reviewer's verdicts recalibrate it.")
    return shown.to_string(index=False) + hint


def _start_command(class_name: str, cache: str | None, key: str | None) -> str:
    if cache is None:
        return f"coreclean session start --class {_quote(class_name)} ..."
    options = f"--cache {_quote(cache)}" + (f" --key {_quote(key)}" if key else "")
    return f"coreclean session start {options} --class {_quote(class_name)}"


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(str(text))
