"""``coreclean rank``: which samples are most likely mislabelled? One CSV row per sample, most suspicious first.

Input is a cache written by ``coreclean embed`` (``--cache DIR``) or your own vectors
(``--features X.npy --labels labels.csv|labels.npy``), and/or your own model's out-of-sample
probabilities (``--pred-probs P.npy``, with ``--labels`` alone or beside features; see
:func:`coreclean.formats.cleanlab_arrays.read_pred_probs` for how rows and columns are matched). The table is
:meth:`coreclean.scoring.ranker.LabelIssueRanker.to_frame` with class names: ``id, label, score,
rank_in_class, suggested_label, suggested_prob`` and the out-of-fold signals (``predicted_label,
predicted_confidence, margin, given_label_prob``); higher ``score`` = review sooner.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from coreclean.cli.argument_types import THREADS_HELP, RenamedOption, non_negative_int, positive_int
from coreclean.exceptions import CorecleanError, InputValidationError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``rank`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "rank",
        help="rank samples by how likely their label is wrong (CSV, most suspicious first)",
        description=(
            "Score every sample of an embedding set by how likely its label is wrong and write the ranking as "
            "CSV (higher score = review sooner), with a suggested label and the out-of-fold model's signals. "
            "Input: --cache DIR (from `coreclean embed`), or your own vectors with --features X.npy --labels FILE "
            "(a CSV with one column of labels, names or integers, or columns id,label; or a .npy of labels). "
            "--pred-probs P.npy (N x K out-of-sample probabilities of your own model, cleanlab's convention) "
            "replaces the built-in model's: with --labels alone (no neighbour vote), or beside features."
        ),
    )
    source = parser.add_argument_group("input (one of)")
    source.add_argument("--cache", metavar="DIR", help="cache folder written by `coreclean embed`")
    source.add_argument("--key", default=None, help="embedding set key in --cache (needed when it holds several; the error lists them)")
    source.add_argument("--features", metavar="X.npy", help="(n_samples, n_features) array of your own embeddings")
    source.add_argument("--labels", metavar="FILE",
                        help="labels for --features: CSV (one column of names or integers, or columns id,label) "
                             "or .npy; row i labels features row i")
    own = parser.add_argument_group("your own model's probabilities (optional)")
    own.add_argument("--pred-probs", metavar="P.npy",
                     help="(n_samples, n_classes) out-of-sample class probabilities, rows summing to 1; they replace "
                          "the out-of-fold logistic regression. Row i is label i (or the cache's sample i)")
    own.add_argument("--ids", metavar="IDS.txt",
                     help="with --pred-probs: the sample id of each row, one a line (the ids of --labels' id "
                          "column, or of the cache)")
    own.add_argument("--class-names", metavar="A,B,C",
                     help="with --pred-probs: the class of each column, comma-separated (default: the classes "
                          "in sorted order, as the labels are numbered)")
    parser.add_argument("--out", required=True, metavar="FILE", help="ranking CSV to write")
    parser.add_argument("--method", default="coreclean",
                        help="ranker from coreclean.scoring.methods.REGISTRY (default: coreclean; e.g. self_confidence, "
                             "knn_disagreement, random)")
    parser.add_argument("--class", dest="class_name", metavar="NAME", help="write only samples labelled NAME")
    parser.add_argument("--top", type=positive_int, metavar="N", help="write only the N most suspicious rows")
    # Unset settings are left to LabelIssueRanker, so the command ranks as the library and the benchmarks do.
    parser.add_argument("--folds", type=positive_int, help="out-of-fold models (default: LabelIssueRanker's)")
    parser.add_argument("--neighbors", type=positive_int, help="neighbours per sample (default: LabelIssueRanker's)")
    parser.add_argument("--components", type=non_negative_int,
                        help="principal components the logistic regressions see; 0 = all columns "
                             "(default: LabelIssueRanker's)")
    parser.add_argument("--seed", "--random-state", dest="seed", type=non_negative_int, default=0, action=RenamedOption,
                        old="--random-state", help="seed of folds and coresets (default: 0; formerly --random-state)")
    parser.add_argument("--threads", type=positive_int, help=THREADS_HELP)
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local (this process) or ray (the passes over every row as Ray tasks over row blocks; "
                             'pip install "coreclean[ray]")')
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="with --engine ray: the cluster to join (host:6379); default: start a local Ray")
    parser.add_argument("--block-rows", type=positive_int, metavar="N",
                        help="with --engine ray: rows per task (default: four blocks per CPU of the cluster)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from coreclean._internal.progress import Progress

    with Progress("rank", phases=3, enabled=False if getattr(args, "quiet", False) else None) as progress:
        summary = _rank(args, progress)
    print(summary)
    return 0


def _rank(args: argparse.Namespace, progress) -> str:
    """Rank, write the CSV, and return the summary to print (after the progress line is gone)."""
    from coreclean._internal.threads import limit_threads
    from coreclean.scoring.ranker import LabelIssueRanker
    from coreclean.scoring.methods import REGISTRY

    if args.method not in REGISTRY:
        raise InputValidationError(f"unknown method {args.method!r}; choose one of {', '.join(sorted(REGISTRY))}.")
    if args.folds is not None and args.folds < 2:
        raise InputValidationError(f"--folds must be at least 2; got {args.folds}.")
    if args.pred_probs is None and (args.ids is not None or args.class_names is not None):
        raise InputValidationError("--ids and --class-names describe --pred-probs; pass --pred-probs P.npy too.")
    with progress.phase("loading embeddings"):
        sample_ids, features, labels, class_names = _load_input(args)
        pred_probs = None
        if args.pred_probs is not None:
            from coreclean.formats.cleanlab_arrays import read_pred_probs

            pred_probs, class_names = read_pred_probs(
                args.pred_probs, sample_ids=sample_ids, class_names=class_names, ids_path=args.ids,
                column_names=None if args.class_names is None else args.class_names.split(","),
                allow_extra_classes=True)
    class_index = None
    if args.class_name is not None:
        if args.class_name not in class_names:
            shown = ", ".join(repr(name) for name in class_names[:20]) + (" ..." if len(class_names) > 20 else "")
            raise InputValidationError(f"no class {args.class_name!r}; the classes are {shown}.")
        class_index = class_names.index(args.class_name)
    settings = {key: value for key, value in (("n_folds", args.folds), ("n_neighbors", args.neighbors),
                                              ("n_components", args.components)) if value is not None}
    if settings.get("n_components") == 0:
        settings["n_components"] = None  # every column
    with _engine(args) as engine, progress.phase(f"ranking {labels.size} samples"), \
            limit_threads(args.threads, n_samples=labels.size,
                          n_features=features.shape[1] if features is not None else len(class_names)):
        ranker = LabelIssueRanker(args.method, random_state=args.seed, engine=engine, **settings)
        ranker.fit(features, labels, n_classes=len(class_names), pred_probs=pred_probs)
    engine_line = "engine local" if engine is None else engine.describe()
    with progress.phase("writing the ranking"):
        frame = ranker.to_frame(sample_ids=sample_ids, class_names=class_names)
        if class_index is not None:
            frame = frame[frame["label"] == class_names[class_index]]
        if args.top is not None:
            frame = frame.head(args.top)
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(out, index=False)
        except OSError as err:
            raise CorecleanError(f"cannot write the ranking to {out}: {err}; pass --out somewhere writable.") from err
    return (format_summary(ranker, class_names, sample_ids, class_index) + "\n"
            f"ranked {labels.size} samples of {len(class_names)} classes with {args.method!r}"
            f"{'' if pred_probs is None else ' on ' + str(args.pred_probs)} in "
            f"{ranker.last_update_seconds_:.1f} s -> {out} ({len(frame)} rows); {engine_line}")


def _engine(args: argparse.Namespace):
    """A context giving the block runner of ``--engine`` (None for local), connected while it is open."""
    import contextlib

    if args.engine != "ray":
        if args.address is not None or args.block_rows is not None:
            raise CorecleanError("--address and --block-rows are for --engine ray: add it (or drop them).")
        return contextlib.nullcontext()
    from coreclean.engines.ray_blocks import RayBlocks

    return RayBlocks(args.address, block_rows=args.block_rows)


def format_summary(ranker, class_names: list[str], sample_ids, class_index: int | None = None) -> str:
    """Per class: kept samples, estimated errors, and the most suspicious sample with its suggested label."""
    import numpy as np
    import pandas as pd

    errors = ranker.errors_per_class()
    kept = ranker.sample_weight_ > 0
    sizes = np.bincount(ranker.labels_[kept], minlength=len(class_names))
    rows = []
    for k in range(len(class_names)) if class_index is None else [class_index]:
        order = ranker.ranking(k)
        if order.size:
            top = order[0]
            suggestion = class_names[ranker.suggested_labels_[top]]
            top_text = f"{sample_ids[top]} -> {suggestion} ({ranker.suggested_probs_[top]:.2f})"
        else:
            top_text = "-"
        rows.append({"class": class_names[k], "n": int(sizes[k]), "est_errors": f"{errors[k]:.0f}",
                     "top_suggestion": top_text})
    return pd.DataFrame(rows).to_string(index=False)


def _load_input(args: argparse.Namespace):
    """``(sample_ids, features, labels, class_names)`` from ``--cache`` or ``--features/--labels``.

    ``features`` is None for ``--labels`` with ``--pred-probs`` and no ``--features``.
    """
    import numpy as np

    if args.cache is not None:
        if args.features is not None or args.labels is not None:
            raise CorecleanError("pass either --cache or --features/--labels, not both.")
        from coreclean.embedding.cache import load_embeddings

        embeddings = load_embeddings(args.cache, key=args.key)
        return embeddings.sample_ids, embeddings.features, embeddings.labels, list(embeddings.class_names)
    if args.labels is not None and args.features is None and args.pred_probs is not None:
        ids, labels, class_names = read_labels(args.labels)
        return (ids if ids is not None else np.arange(labels.size)), None, labels, class_names
    if args.features is None or args.labels is None:
        raise CorecleanError("give --cache DIR, or --features X.npy with --labels FILE, or --pred-probs P.npy with "
                             "--labels FILE.")
    features = _load_features(args.features)
    ids, labels, class_names = read_labels(args.labels)
    if labels.size != features.shape[0]:
        raise InputValidationError(
            f"{args.labels} has {labels.size} labels but {args.features} has {features.shape[0]} rows; "
            "label i must belong to features row i."
        )
    return (ids if ids is not None else np.arange(labels.size)), features, labels, class_names


def _load_features(path: str | os.PathLike):
    import numpy as np

    try:
        features = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputValidationError(f"cannot read {path} as a .npy array: {err}; save it with numpy.save.") from err
    if not isinstance(features, np.ndarray) or features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
        shape = getattr(features, "shape", None)
        raise InputValidationError(
            f"{path} must hold a 2-D numeric array (n_samples, n_features); got shape {shape}"
            f"{'' if shape is None else f', dtype {features.dtype}'}."
        )
    if features.dtype != np.float32:
        features = np.ascontiguousarray(features, dtype=np.float32)
    return features


def read_labels(path: str | os.PathLike):
    """Read a labels file: ``(ids or None, labels int64 (n_samples,), class_names)``.

    A CSV holds one column of labels (an optional header ``label``), or columns ``id,label``; a
    .npy holds a 1-D array. Integer labels k name class ``str(k)`` (0..max); other labels are class
    names, numbered in sorted order.
    """
    import numpy as np
    import pandas as pd

    from coreclean._internal.validation import read_npy

    path = Path(path)
    ids = None
    if path.suffix.lower() == ".npy":
        values = read_npy(path, ndim=1, holds="of labels")
        if values.dtype.kind == "f":
            if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
                raise InputValidationError(f"{path} holds non-integer numbers; labels must be integers or names.")
            values = values.astype(np.int64)
        texts = values.astype(str)
    else:
        try:
            table = pd.read_csv(path, dtype=str, header=None, keep_default_na=False, encoding="utf-8-sig")
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise InputValidationError(f"cannot read labels file {path}: {err}") from err
        header = [str(v).strip().lower() for v in table.iloc[0]] if len(table) else []
        if table.shape[1] == 2 and header == ["id", "label"]:
            ids = table.iloc[1:, 0].to_numpy(dtype=object)
            texts = table.iloc[1:, 1].to_numpy(dtype=str)
        elif table.shape[1] == 1:
            texts = table.iloc[1:, 0].to_numpy(dtype=str) if header == ["label"] else table.iloc[:, 0].to_numpy(dtype=str)
        else:
            raise InputValidationError(
                f"{path} must have one column of labels or the two columns id,label (with that header); "
                f"got {table.shape[1]} columns."
            )
        texts = np.char.strip(texts.astype(str))
    if texts.size == 0:
        raise InputValidationError(f"{path} holds no labels.")
    empty = np.flatnonzero(texts == "")
    if empty.size:
        raise InputValidationError(f"{path} has {empty.size} empty label(s) (first at row {int(empty[0])}).")
    if all(_is_int(t) for t in np.unique(texts)):
        labels = texts.astype(np.int64)
        if labels.min() < 0:
            raise InputValidationError(f"{path} has negative integer labels; use 0..n_classes-1 or class names.")
        class_names = [str(k) for k in range(int(labels.max()) + 1)]
    else:
        class_names, labels = np.unique(texts, return_inverse=True)
        class_names = [str(name) for name in class_names]
        labels = labels.astype(np.int64)
    if ids is not None and len(set(ids)) != ids.size:
        raise InputValidationError(f"{path} has duplicate ids; each id must name one sample.")
    return ids, labels, class_names


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
