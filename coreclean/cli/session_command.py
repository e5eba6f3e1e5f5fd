"""``coreclean session``: clean classes round by round, headless (CSV in, CSV out), resumable and audited.

Sub-commands: ``start``, ``next``, ``apply``, ``status``, ``export``, ``undo``. They all work on one
session file (``--session FILE``); see :class:`coreclean.sessions.session.CleaningSession`.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from coreclean._internal.atomic import atomic_write_text
from coreclean.cli.argument_types import THREADS_HELP, RenamedOption, non_negative_int, positive_int
from coreclean.exceptions import CorecleanError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``session`` sub-command (and its own sub-commands) to ``subparsers``."""
    parser = subparsers.add_parser(
        "session",
        help="clean classes round by round (start, next, apply, revise, status, export, undo)",
        description=(
            "A cleaning session is one SQLite file. `start` creates it; `next` shows (and writes as CSV + PNG) "
            "the round's most suspicious samples; fill in the CSV's action/new_label columns and `apply` it, "
            "which also closes the round (ranking update, AUROC, plateau verdict); `status` shows the rounds; "
            "`export` writes the cleaned labels and a label patch; `undo` revokes the last decision or round."
        ),
    )
    commands = parser.add_subparsers(dest="session_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: _usage(parser))

    start = commands.add_parser("start", help="start a session on a cache", description="Start a cleaning session.")
    start.add_argument("--cache", required=True, metavar="DIR", help="cache folder written by `coreclean embed`")
    start.add_argument("--key", help="embedding set key in --cache (needed when it holds several; the error lists them)")
    start.add_argument("--class", dest="classes", action="append", required=True, metavar="NAME",
                       help="a class to clean (repeat for several)")
    start.add_argument("--against", metavar="NAME", help="rank by the probability of being this partner class")
    start.add_argument("--per-class", "--batch", dest="per_class", type=positive_int, default=50,
                       action=RenamedOption, old="--batch",
                       help="reviews per class per round (default: 50); with several classes the round shows "
                            "--per-class x classes in all (formerly --batch)")
    start.add_argument("--allocation", choices=("errors", "fixed"), default="errors",
                       help="share each round's reviews across the classes: a floor each, the rest to the samples "
                            "most likely wrong in any class (errors, the default), or --per-class of each (fixed)")
    start.add_argument("--audit", type=non_negative_int, default=0, metavar="K",
                       help="also show K samples of each class drawn at random each round (default: 0): their "
                            "verdicts measure the errors left where the ranking does not reach, for a stop verdict "
                            "that rests on evidence (K more reviews per class per round; not in the hit rate)")
    start.add_argument("--session", metavar="FILE", help="session file (default: CACHE/sessions/<classes>.session)")
    start.add_argument("--method", default="coreclean", help="ranker (default: coreclean; 'random' for a baseline)")
    start.add_argument("--no-evaluate", action="store_true", help="skip the out-of-sample AUROC at each round")
    start.add_argument("--pred-probs", metavar="P.npy",
                       help="your model's out-of-sample probabilities (n_samples, n_classes), rows in the cache's "
                            "sample order (or --ids): they replace the built-in model and stay fixed while reviews "
                            "update the neighbour vote, the noise prior and trust")
    start.add_argument("--ids", metavar="IDS.txt", help="with --pred-probs: the cache sample id of each row, one a line")
    start.add_argument("--class-names", metavar="A,B,C",
                       help="with --pred-probs: the class of each column, comma-separated (default: the cache's "
                            "class order)")
    start.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: 0)")
    start.add_argument("--threads", type=positive_int, help=THREADS_HELP)
    start.set_defaults(handler=_start)

    next_ = commands.add_parser("next", help="show the round's batch; write it as CSV and a contact sheet",
                                description="Show the open round's batch and write it as CSV + PNG for review.")
    _session_arguments(next_)
    next_.add_argument("--out", metavar="DIR", help="where to write round-N.csv / round-N.png "
                       "(default: next to the session file)")
    next_.add_argument("--no-sheet", action="store_true", help="do not draw the contact sheet")
    next_.set_defaults(handler=_next)

    apply = commands.add_parser("apply", help="apply a filled-in decisions CSV (all or nothing) and close the round",
                                description="Validate DECISIONS.csv (id,action[,new_label,weight]) as a whole, "
                                            "record it, then close the round.")
    _session_arguments(apply)
    apply.add_argument("decisions", metavar="DECISIONS.csv")
    apply.add_argument("--from", dest="source", choices=("csv", "label-studio", "fiftyone"), default="csv",
                       help="what DECISIONS is: a decisions CSV (default), a Label Studio JSON export of tasks "
                            "written by export --format label-studio (chosen class = given: keep, else relabel), "
                            "or the name of a FiftyOne dataset written by export --format fiftyone (each sample "
                            "of the open round: a drop/delete, skip or downweight tag decides; else the label in "
                            "--field: given: keep, another class: relabel, none: undecided)")
    apply.add_argument("--field", default="ground_truth",
                       help="with --from fiftyone: the Classification field holding the reviewed labels "
                            "(default: ground_truth)")
    apply.add_argument("--reviewer", help="name recorded with each decision")
    apply.add_argument("--no-close", action="store_true", help="record the decisions but keep the round open")
    apply.set_defaults(handler=_apply)

    revise = commands.add_parser("revise", help="change one decision of the last closed round and recompute it",
                                 description="Revoke the decision on sample ID made in the last closed round, "
                                             "record ACTION instead and recompute that round's numbers.")
    _session_arguments(revise)
    revise.add_argument("sample_id", metavar="ID")
    revise.add_argument("action", metavar="ACTION", choices=("keep", "relabel", "drop", "downweight", "skip"))
    revise.add_argument("--new-label", metavar="CLASS", help="the new class, for relabel")
    revise.add_argument("--weight", type=float, help="the new weight, for downweight (default 0.5)")
    revise.add_argument("--reviewer", help="name recorded with the decision")
    revise.set_defaults(handler=_revise)

    status = commands.add_parser("status", help="the rounds as a table, and plots",
                                 description="Print the rounds and write rounds.png.")
    _session_arguments(status)
    status.add_argument("--plots", metavar="FILE", help="PNG to write (default: <session>-rounds.png)")
    status.set_defaults(handler=_status)

    export = commands.add_parser("export", help="write cleaned labels, a label patch and the audit trail, or a tree",
                                 description="--format csv (default): labels.csv, label_patch.csv, decisions.csv and "
                                             "rounds.csv, and the cleaned manifest.csv. --format tree: a folder per "
                                             "class with relabelled files in their new class and dropped ones left "
                                             "out, plus its manifest.csv. --format label-studio | cleanlab | hf: "
                                             "tasks for Label Studio, cleanlab's arrays, a Hugging Face dataset, a FiftyOne dataset.")
    _session_arguments(export)
    export.add_argument("--out", required=True, metavar="DIR")
    export.add_argument("--format", choices=("csv", "tree", "label-studio", "cleanlab", "hf", "fiftyone"),
                        default="csv",
                        help="what to write (default: csv); label-studio: tasks.json (the open round's batch, "
                             "highest score first, the suggested class as a prediction) and labeling_config.xml; cleanlab: "
                             "labels.npy, pred_probs.npy, knn_graph.npz, ids.txt; hf: a Hugging Face dataset (save_to_disk) "
                             "of the kept images with their cleaned labels (needs coreclean[hf]); fiftyone: a persistent FiftyOne "
                             "dataset of every image with its label, coreclean's suggestion and score, the open "
                             "round's batch tagged needs-review, plus OUT/open_fiftyone.py (needs coreclean[fiftyone])")
    export.add_argument("--dataset-name", metavar="NAME",
                        help="with --format fiftyone: the dataset to create, or update if it exists "
                             "(default: coreclean-<session file name>)")
    export.add_argument("--image-root-url", metavar="URL",
                        help="with --format label-studio: prefix of each task's image URL (URL + quoted sample id)")
    export.add_argument("--link", choices=("copy", "hard", "symlink"), default="copy",
                        help="with --format tree: copy files (default), hard-link them (shares the original files: "
                             "editing one edits both) or symlink them")
    export.add_argument("--manifest", metavar="SOURCE",
                        help="the original dataset (CSV or folder) to write a cleaned manifest.csv for "
                             "(default: the source the cache was embedded from, if it still exists)")
    export.set_defaults(handler=_export)

    undo = commands.add_parser("undo", help="revoke the last decision (or the last round)",
                               description="Append undo records for the last decision, or with --round for the "
                                           "open round's decisions (or, if it has none, reopen the last round).")
    _session_arguments(undo)
    undo.add_argument("--round", action="store_true", help="undo the whole round")
    undo.set_defaults(handler=_undo)


def _session_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--session", required=True, metavar="FILE", help="the session file")
    parser.add_argument("--cache", metavar="DIR", help="the cache, if it moved since `session start`")
    parser.add_argument("--threads", type=positive_int, help=THREADS_HELP)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _open(args: argparse.Namespace, *, read_only: bool = False):
    from coreclean.sessions.session import CleaningSession

    return CleaningSession.open(args.session, cache_dir=args.cache, read_only=read_only, n_threads=args.threads)


def _progress(args: argparse.Namespace, step: str, phases: int):
    """A progress line on stderr for a session step (phases named as they start; none when piped or -q)."""
    from coreclean._internal.progress import Progress

    return Progress(f"session {step}", phases=phases, enabled=False if getattr(args, "quiet", False) else None)


def _start(args: argparse.Namespace) -> int:
    from coreclean.sessions.errors_left import suggested_audits
    from coreclean.sessions.session import CleaningSession

    path = args.session
    if path is None:
        slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", "+".join(args.classes)).strip("-") or "session"
        if args.against:
            slug += "-vs-" + re.sub(r"[^A-Za-z0-9._-]+", "-", args.against)
        if args.key:  # one cache, several datasets: their sessions must not share a default file
            slug = f"{args.key}-{slug}"
        path = str(Path(args.cache) / "sessions" / f"{slug}.session")
    pred_probs = _read_pred_probs(args)
    with _progress(args, "start", 1) as progress, progress.phase("ranking the samples, measuring the baseline"):
        session = CleaningSession.start(args.cache, path, classes=args.classes, against=args.against,
                                        batch_size=args.per_class, allocation=args.allocation, method=args.method,
                                        evaluate=not args.no_evaluate, key=args.key, random_state=args.seed,
                                        n_threads=args.threads, pred_probs=pred_probs, audit=args.audit)
    with session:
        baseline = session.rounds().iloc[0]
        print(f"started {path}: cleaning {', '.join(session.classes)}"
              + (f" against {session.against}" if session.against else "")
              + f", {session.batch_size} per class per round"
              + (f" and {session.audit} random audit(s) per class" if session.audit else ""))
        print(f"{baseline['verdict']}" + (f"; CV AUROC {baseline['auroc']:.4f}"
                                                    if _finite(baseline["auroc"]) else ""))
        rate = baseline["base_rate"]
        audits = suggested_audits(rate, session.audit)
        if audits:
            print(f"note: ~{rate:.0%} of these labels look wrong; on noise this heavy the errors left are estimated "
                  "from the ranking alone and can be far off (README, 'Where the estimate is off'). To measure them, "
                  f"start again with --audit {audits} (after removing {path}).")
        print(f"next: coreclean session next --session {path}")
    return 0


def _read_pred_probs(args: argparse.Namespace):
    """``--pred-probs`` in the cache's row and class order (None without it)."""
    if args.pred_probs is None:
        if args.ids is not None or args.class_names is not None:
            raise CorecleanError("--ids and --class-names describe --pred-probs; pass --pred-probs P.npy too.")
        return None
    from coreclean.embedding.cache import load_embeddings
    from coreclean.formats.cleanlab_arrays import read_pred_probs

    embeddings = load_embeddings(args.cache, key=args.key)
    probs, _ = read_pred_probs(args.pred_probs, sample_ids=embeddings.sample_ids, class_names=embeddings.class_names,
                               ids_path=args.ids,
                               column_names=None if args.class_names is None else args.class_names.split(","))
    return probs


def _next(args: argparse.Namespace) -> int:
    from coreclean.sessions.decisions import BATCH_COLUMNS, read_decisions

    with _progress(args, "next", 2) as progress:
        with progress.phase("opening the session"):
            session = _open(args)
        with progress.phase("choosing the batch"):
            batch = session.next_batch()
    with session:
        if batch.empty:
            print("nothing left to review in this session's classes.")
            return 0
        out = Path(args.out) if args.out else Path(session.path).with_name(Path(session.path).stem + "-review")
        out.mkdir(parents=True, exist_ok=True)
        csv_path = out / f"round-{session.round}.csv"
        decided = read_decisions(csv_path) if csv_path.exists() else None
        kept = decided is not None and not decided.empty
        if not kept:
            columns = BATCH_COLUMNS + (["audit"] if session.audit else [])  # audit: 1 = drawn at random
            atomic_write_text(csv_path, batch[columns].to_csv(index=False))
        shown = batch[["position", "id", "label", "suggested_label", "suggested_prob", "score", "action"]].copy()
        if kept:  # the table shows what the file holds, so a re-run never looks as if the decisions were cleared
            shown["action"] = shown["id"].map(decided.drop_duplicates("id", keep="last").set_index("id")["action"])
            shown["action"] = shown["action"].fillna("")
        shown["suggested_prob"] = shown["suggested_prob"].map("{:.2f}".format)
        shown["score"] = shown["score"].map("{:.3f}".format)
        png = None
        if not args.no_sheet:  # every file is written before anything is printed (a closed pipe loses no file)
            from coreclean.diagnostics.plots import contact_sheet

            png = contact_sheet(batch, out / f"round-{session.round}.png")
        print(shown.to_string(index=False, max_rows=60))
        if kept:
            print(f"round {session.round}: {len(batch)} samples; {csv_path} already holds {len(decided)} decision(s): "
                  "kept as it is (not rewritten).")
        else:
            print(f"round {session.round}: {len(batch)} samples -> {csv_path}")
        if png is not None:
            print(f"contact sheet -> {png}")
        if kept:
            print(f"finish it, then: coreclean session apply --session {session.path} {csv_path}")
        else:
            print("fill in action (keep/relabel/drop/downweight/skip) and new_label, then: "
                  f"coreclean session apply --session {session.path} {csv_path}")
    return 0


def _apply(args: argparse.Namespace) -> int:
    from coreclean.sessions.decisions import read_decisions

    decisions = args.decisions
    if args.source == "label-studio":
        from coreclean.formats.label_studio import read_label_studio_export

        decisions = read_label_studio_export(args.decisions)
    with _open(args) as session:
        if args.source == "fiftyone":
            from coreclean.formats.fiftyone import read_fiftyone_decisions

            try:
                decisions = read_fiftyone_decisions(args.decisions, session.next_batch(),
                                                    class_names=session.class_names, field=args.field)
            except ImportError as err:
                print(f"coreclean session: error: {err}", file=sys.stderr)
                return 2
            counts = decisions["action"].value_counts()
            if len(counts):  # what the dataset says, before it is recorded (a label left as given reads as keep)
                print(f"from FiftyOne dataset {args.decisions!r} (field {args.field}): "
                      + ", ".join(f"{n} {action}" for action, n in counts.items()))
        if read_decisions(decisions).empty:
            what = {"label-studio": "Annotate the tasks in Label Studio and export them again",
                    "fiftyone": f"Review the samples tagged needs-review in FiftyOne (set {args.field}, or tag "
                                "drop/skip/downweight)",
                    }.get(args.source, "Fill in its action column (keep/relabel/drop/downweight/skip)")
            print(f"{args.decisions} holds no decision: nothing was applied and round {session.round} stays open. "
                  f"{what}, then apply it again.")
            return 1
        n_applied = session.apply(decisions, reviewer=args.reviewer)
        print(f"recorded {n_applied} new decision(s) in round {session.round}"
              + ("" if n_applied else " (all were recorded before)"))
        if args.no_close:
            return 0
        batch = session.next_batch()
        undecided = int((batch["action"] == "").sum()) if len(batch) else 0
        if undecided:
            print(f"{undecided} sample(s) of the batch left undecided; they can come back in a later round")
        with _progress(args, "apply", 1) as progress, progress.phase("closing the round: re-scoring, measuring"):
            result = session.close_round()
        print(_result_line(result, session.path))
    return 0


def _revise(args: argparse.Namespace) -> int:
    with _open(args) as session, _progress(args, "revise", 1) as progress:
        with progress.phase("recomputing the round"):
            result = session.revise(args.sample_id, args.action, new_label=args.new_label, weight=args.weight,
                                    reviewer=args.reviewer)
        print(f"revised {args.sample_id}: {args.action}" + (f" -> {args.new_label}" if args.new_label else ""))
        print(_result_line(result, session.path))
    return 0


def _result_line(result, path) -> str:
    """The closed round, its verdict, and the command to run next: the next batch, or the export once it says stop."""
    auroc = f"; CV AUROC {result.auroc:.4f} [{result.auroc_low:.4f}, {result.auroc_high:.4f}]" if _finite(result.auroc) else ""
    session = shlex.quote(str(path))
    then = (f"export: coreclean session export --session {session} --out cleaned (--format tree for a "
            "folder-per-class copy)" if result.verdict.plateau else f"next: coreclean session next --session {session}")
    return (f"round {result.round} closed: {result.n_errors_found} error(s) in {result.n_reviewed} reviewed{auroc}\n"
            f"verdict: {result.verdict.summary}\n{then}")


def _status(args: argparse.Namespace) -> int:
    from coreclean.diagnostics.plots import plot_rounds

    with _open(args, read_only=True) as session:
        status = session.status()
        rounds = session.rounds()
        print(f"{session.path}: cleaning {', '.join(status['classes'])}"
              + (f" against {status['against']}" if status["against"] else "")
              + f"; round {status['round']} open ({status['pending_decisions']} decision(s) pending, "
                f"{status['batch_shown']} shown)")
        print(format_rounds(rounds))
        if status["last_verdict"]:
            print(f"verdict: {status['last_verdict']}")
        png = args.plots or str(Path(session.path).with_name(Path(session.path).stem + "-rounds.png"))
        try:
            print(f"plots -> {plot_rounds(rounds, png, title=', '.join(status['classes']))}")
        except OSError as err:
            raise CorecleanError(f"cannot write plots to {png}: {err}; pass --plots FILE somewhere writable.") from err
    return 0


def format_rounds(rounds) -> str:
    """The rounds table as aligned text."""
    table = rounds[["round", "n_reviewed", "n_errors_found", "hit_rate", "base_rate", "errors_left", "auroc",
                    "auroc_change", "plateau", "update_seconds", "eval_seconds"]].copy()
    table.columns = ["round", "reviewed", "found", "hit_rate", "base_rate", "est_left", "cv_auroc", "auroc_change",
                     "plateau", "update_s", "eval_s"]
    table["found_total"] = rounds["errors_found_total"]
    for column, fmt in (("hit_rate", "{:.0%}"), ("base_rate", "{:.1%}"), ("est_left", "{:.0f}"),
                        ("cv_auroc", "{:.4f}"), ("auroc_change", "{:+.4f}"), ("update_s", "{:.2f}"),
                        ("eval_s", "{:.2f}")):
        table[column] = [fmt.format(v) if _finite(v) else "-" for v in table[column]]
    return table.to_string(index=False)


def _export(args: argparse.Namespace) -> int:
    from coreclean.sessions.export import apply_label_patch, write_manifest

    # label-studio and fiftyone export the open round's batch, which is drawn (and stored) on first use
    with _open(args, read_only=args.format not in ("label-studio", "fiftyone")) as session:
        if args.format == "label-studio":
            return _export_label_studio(args, session)
        if args.format == "fiftyone":
            return _export_fiftyone(args, session)
        if args.format == "cleanlab":
            from coreclean.formats.cleanlab_arrays import export_cleanlab
            from coreclean.sessions.export import ranker_arrays

            paths = export_cleanlab(**ranker_arrays(session), out_dir=args.out)
            print("\n".join(f"{name}: {path}" for name, path in paths.items()))
            return 0
        if args.format == "hf":
            from coreclean.formats.hf import export_hf
            from coreclean.sessions.export import session_table

            try:
                out = export_hf(session_table(session), args.out, class_names=session.class_names)
            except ImportError as err:
                print(f"coreclean session: error: {err}", file=sys.stderr)
                return 2
            print(f"hf dataset: {out} (load it with datasets.load_from_disk)")
            return 0
        if args.format == "tree":
            from coreclean.formats.tree import export_tree
            from coreclean.sessions.export import session_table

            table = session_table(session)
            manifest = export_tree(table, args.out, link=args.link)
            from coreclean.embedding.cache import read_cache_info

            kept = int((table["weight"] > 0).sum())
            print(f"tree: {args.out} ({kept} images in {table.loc[table['weight'] > 0, 'label'].nunique()} class "
                  f"folders, {len(table) - kept} dropped left out; files {args.link})\nmanifest: {manifest}")
            unread = read_cache_info(session.cache_dir, key=session.cache_key).get("n_skipped", 0)
            if unread:
                print(f"not in the tree: {unread} file(s) `coreclean embed` could not read (it listed them in "
                      f"{Path(session.cache_dir) / 'errors.csv'} when it ran)")
            return 0
        paths = session.export(args.out)
        source = args.manifest
        from_hf = False
        if source is None:
            from coreclean.embedding.cache import read_cache_info
            from coreclean.formats.hf_source import HF_SOURCE_PREFIX

            source = read_cache_info(session.cache_dir, key=session.cache_key).get("source")
            from_hf = str(source).startswith(HF_SOURCE_PREFIX)
            if source is not None and not Path(source).exists():
                source = None
        n_changed = sum(1 for _ in open(paths["patch"], encoding="utf-8")) - 1
        for name, path in paths.items():
            print(f"{name}: {path}")
        if from_hf:
            print("(embedded from a Hugging Face dataset: --format hf saves the cleaned dataset itself)")
        if source is not None:
            manifest = apply_label_patch(source, paths["patch"])
            print(f"manifest: {write_manifest(manifest, Path(args.out) / 'manifest.csv')} "
                  f"(the original {source} with the patch applied)")
        print(f"{n_changed} sample(s) changed")
    return 0


def _export_label_studio(args: argparse.Namespace, session: Any) -> int:
    from coreclean.formats.label_studio import export_label_studio

    if not args.image_root_url:
        print("--format label-studio needs --image-root-url URL (where Label Studio finds the images, e.g. "
              "http://127.0.0.1:8081/ serving the image folder); nothing was written.")
        return 2
    paths = export_label_studio(session.next_batch(), args.out, image_root_url=args.image_root_url,
                                class_names=session.class_names)
    print(f"tasks: {paths['tasks']}\nlabeling config: {paths['config']}\nimport the tasks into a Label Studio "
          "project with that config; then: coreclean session apply --from label-studio EXPORT.json")
    return 0


def _export_fiftyone(args: argparse.Namespace, session: Any) -> int:
    from coreclean.formats.fiftyone import NEEDS_REVIEW, export_fiftyone, open_app_code
    from coreclean.sessions.export import scored_session_table

    name = args.dataset_name or f"coreclean-{Path(session.path).stem}"
    table = scored_session_table(session)
    try:
        export_fiftyone(table, name)
    except ImportError as err:
        print(f"coreclean session: error: {err}", file=sys.stderr)
        return 2
    code = open_app_code(name)
    script = Path(args.out) / "open_fiftyone.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(script, code + "\n")
    print(f"FiftyOne dataset: {name} ({len(table)} samples, {int(table['review'].sum())} tagged {NEEDS_REVIEW})\n"
          f"open it in the FiftyOne App (python {script}):\n{code}\n"
          f"then: coreclean session apply --session {shlex.quote(session.path)} --from fiftyone {shlex.quote(name)}")
    return 0


def _undo(args: argparse.Namespace) -> int:
    with _open(args) as session:
        revoked = session.undo("round" if args.round else "decision")
        for row in revoked.itertuples(index=False):
            detail = f" -> {row.new_label}" if row.action == "relabel" else ""
            print(f"revoked decision {row.decision_id} (round {row.round}): {row.action} {row.id}{detail}")
        print(f"round {session.round} is open")
    return 0


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
