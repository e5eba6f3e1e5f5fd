"""The journey: the product as a user runs it, the CLI in subprocesses with default settings.

    python -m benchmarks.journey [--seeds 0 1 2] [--per-class 300] [--noise 0.08] [--batch 20]
                                 [--max-rounds 10] [--timing-repeats 3] [--audit K] [--skew S] [--no-readme]

For each seed: a real folder built from CIFAR-10 train (:func:`benchmarks.journey_data.build_journey_folder`:
``--per-class`` images a class, ``--noise`` of them moved into a wrong class folder, uniformly or, with
``--skew S``, mostly into a few classes), then

1. ``coreclean embed DATA --cache CACHE --backbone mobilenet_v2 --weights W`` (the shared ImageNet
   MobileNetV2 trunk: ResNet18 weights cannot be had offline here);
2. ``coreclean classes --cache CACHE --json``: the three classes it recommends;
3. ``coreclean session start`` over those three classes, once with each ``--allocation`` (``errors``,
   the default, and ``fixed``), each its own session; rounds of ``session next`` / ``session apply``
   with a simulated reviewer filling the batch CSV from the truth (audits too, where ``--audit K``
   passes ``session start --audit K``), until the verdict says stop (cap ``--max-rounds``);
4. ``coreclean session export`` (and ``--format tree`` where the command has it).

Every step's wall time is recorded, and per round: errors found, estimated vs true errors left per
class, the verdict. For seed 0 it also times ``classes``, ``rank``, ``session start`` and one ``session apply``
at ``--threads 1``, ``--threads 2`` and the default, ``--timing-repeats`` interleaved runs each (medians), once
on the machine as found and once with one spinning process per core beside them.

Results: ``benchmarks/results/journey.json`` (keys documented in :func:`run`) and
``benchmarks/results/journey.md``; the README block between ``<!-- journey:start -->`` and
``<!-- journey:end -->`` is regenerated from them. With ``--audit K`` (K > 0) the results go to
``journey-auditK.json`` / ``.md`` and its folders to ``work/journey-auditK``, with ``--skew S`` to
``journey-skewS``; the README block is left as it is (it shows the default session on uniform noise).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.data import DEFAULT_WEIGHTS, REPO, SHARED
from benchmarks.journey_data import build_journey_folder

WORK = REPO / "benchmarks" / "work"
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"
ALLOCATIONS = ("errors", "fixed")


def coreclean(*args: str, check: bool = True) -> tuple[float, str]:
    """Run ``coreclean ARGS`` as a user would (a subprocess, default environment); return (seconds, stdout)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "coreclean", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - start
    if check and done.returncode != 0:
        raise RuntimeError(f"coreclean {' '.join(args)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def class_flags(classes: list[str]) -> list[str]:
    """``--class A --class B ...``: the classes as `session start` takes them."""
    return [arg for c in classes for arg in ("--class", c)]


def review(sheet: pd.DataFrame, truth: dict[str, str]) -> pd.DataFrame:
    """What a perfect reviewer writes into a batch CSV: relabel to the truth where wrong, keep otherwise."""
    sheet = sheet.copy()
    true = sheet["id"].map(truth)
    wrong = sheet["label"] != true
    sheet["action"] = np.where(wrong, "relabel", "keep")
    sheet["new_label"] = np.where(wrong, true, "")
    return sheet


def true_errors_left(truth: pd.DataFrame, reviewed: set[str], classes: list[str]) -> dict[str, int]:
    """Per class: unreviewed samples in its folder whose true class is another (unreviewed = never relabelled)."""
    pending = truth[~truth["id"].isin(reviewed)]
    return {c: int(((pending["given_label"] == c) & (pending["true_label"] != c)).sum()) for c in classes}


def estimated_errors_left(session_file: Path) -> dict[str, float]:
    """What the session estimates, as stored in its file (the same numbers `session status` prints)."""
    from coreclean.sessions.store import SessionStore
    from coreclean.sessions.reporting import last_errors_left_by_class

    store = SessionStore(session_file, read_only=True)
    try:
        return last_errors_left_by_class(store.closed_rounds())
    finally:
        store.close()


def clean(cache: Path, truth: pd.DataFrame, classes: list[str], allocation: str, batch: int,
          max_rounds: int, work: Path, audit: int = 0) -> dict[str, Any]:
    """One session over ``classes`` driven through the CLI; returns its rounds and step times."""
    session = work / f"{allocation}.session"
    review_dir = work / f"{allocation}-review"
    for path in (session, review_dir):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    start_s, _ = coreclean("session", "start", "--cache", str(cache), *class_flags(classes), "--per-class", str(batch),
                           "--allocation", allocation, "--audit", str(audit), "--session", str(session))
    truth_map = dict(zip(truth["id"], truth["true_label"]))
    reviewed: set[str] = set()
    initial = true_errors_left(truth, reviewed, classes)
    rounds = [{"round": 0, "estimated_left": estimated_errors_left(session), "true_left": initial,
               "found": 0, "reviewed": 0, "found_by_class": {c: 0 for c in classes}, "verdict": "baseline"}]
    steps = {"session start": start_s, "session next": [], "session apply": []}
    for round_number in range(1, max_rounds + 1):
        next_s, _ = coreclean("session", "next", "--session", str(session), "--out", str(review_dir))  # with its sheet
        sheet_path = review_dir / f"round-{round_number}.csv"
        if not sheet_path.is_file():
            break  # nothing left to review
        sheet = review(pd.read_csv(sheet_path, dtype=str, keep_default_na=False), truth_map)
        sheet.to_csv(sheet_path, index=False)
        apply_s, out = coreclean("session", "apply", "--session", str(session), str(sheet_path))
        verdict = next(line for line in out.splitlines() if line.startswith("verdict:"))[len("verdict: "):]
        reviewed.update(sheet["id"])
        hits = sheet[sheet["action"] == "relabel"]
        steps["session next"].append(next_s)
        steps["session apply"].append(apply_s)
        rounds.append({
            "round": round_number, "reviewed": len(sheet), "found": len(hits),
            "found_by_class": {c: int((hits["label"] == c).sum()) for c in classes},
            "estimated_left": estimated_errors_left(session), "true_left": true_errors_left(truth, reviewed, classes),
            "verdict": verdict,
        })
        if verdict.startswith("stop"):
            break
    export_s, _ = coreclean("session", "export", "--session", str(session), "--out", str(work / f"{allocation}-export"))
    steps["session export"] = export_s
    tree_s, _ = _export_tree(session, work / f"{allocation}-tree")
    if tree_s is not None:
        steps["session export --format tree"] = tree_s
    return {"allocation": allocation, "classes": classes, "initial_errors": initial, "rounds": rounds,
            "steps": steps, "stopped": rounds[-1]["verdict"].startswith("stop")}


def _export_tree(session: Path, out: Path) -> tuple[float | None, str]:
    shutil.rmtree(out, ignore_errors=True)
    seconds, text = coreclean("session", "export", "--session", str(session), "--format", "tree", "--out", str(out),
                              check=False)
    return (seconds, text) if (out / "manifest.csv").is_file() else (None, text)


def thread_timings(cache: Path, classes: list[str], batch: int, session: Path, sheet: Path, repeats: int,
                   work: Path) -> dict[str, dict[str, float]]:
    """Median wall time of `classes`, `rank`, `session start` and one `session apply` per thread setting.

    The settings are ``--threads 1``, ``--threads 2`` and the default. They run interleaved (1, 2, default, 1, 2,
    default, ...) so machine drift hits all alike; each start makes a new session over ``classes``, each
    apply runs on a fresh copy of ``session`` as it was before its first round closed.
    """
    settings = {"--threads 1": ["--threads", "1"], "--threads 2": ["--threads", "2"], "default": []}
    coreclean("classes", "--cache", str(cache))  # untimed: the cache's derived/ folder exists for every setting
    steps = ("classes", "rank", "session start", "session apply")
    times: dict[str, dict[str, list[float]]] = {step: {k: [] for k in settings} for step in steps}
    started, copy = work / "timing-start.session", work / "timing.session"
    for _ in range(repeats):
        for name, flags in settings.items():
            times["classes"][name].append(coreclean("classes", "--cache", str(cache), *flags)[0])
            times["rank"][name].append(coreclean("rank", "--cache", str(cache), "--out", str(work / "timing-rank.csv"),
                                                 *flags)[0])
            started.unlink(missing_ok=True)
            times["session start"][name].append(coreclean("session", "start", "--cache", str(cache),
                                                          *class_flags(classes), "--per-class", str(batch),
                                                          "--session", str(started), *flags)[0])
            copy.unlink(missing_ok=True)
            shutil.copy(session, copy)
            times["session apply"][name].append(coreclean("session", "apply", "--session", str(copy), str(sheet),
                                                          *flags)[0])
    return {step: {name: statistics.median(values) for name, values in by.items()} for step, by in times.items()}


def results_stem(audit: int, skew: float = 0.0) -> str:
    """The name results and work folders share: ``journey``, plus ``-auditK`` for ``--audit K`` and ``-skewS`` for ``--skew S``."""
    return "journey" + (f"-audit{audit}" if audit else "") + (f"-skew{skew:g}" if skew else "")


def run(seeds: list[int], per_class: int, noise: float, batch: int, max_rounds: int,
        timing_repeats: int, audit: int = 0, skew: float = 0.0) -> dict[str, Any]:
    """Run the journey for each seed.

    Returns (and writes to ``benchmarks/results/<results_stem(audit, skew)>.json``) a dict with ``settings`` (the
    arguments (``audit`` and ``skew`` included), backbone, weights file, git commit, CPU count, load average before and after),
    ``seeds`` (one entry per seed: ``seed``, ``n_images``, ``n_planted``, ``steps`` (seconds of
    ``embed`` and ``classes``), ``recommended`` (the three classes), ``sessions``: one per
    allocation, each with ``classes``, ``initial_errors`` (true, per class), ``rounds`` (per round:
    ``reviewed``, ``found``, ``found_by_class``, ``estimated_left`` and ``true_left`` per class,
    ``verdict``), ``steps`` (seconds: ``session start``, lists for ``session next`` and ``session
    apply``, ``session export``) and ``stopped``) and ``thread_timings`` (seed 0: ``as found`` and
    ``under load``, each the median seconds of ``classes``, ``rank``, ``session start`` and ``session apply`` per
    thread setting).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    result: dict[str, Any] = {"settings": {
        "seeds": seeds, "per_class": per_class, "noise": noise, "batch": batch, "max_rounds": max_rounds,
        "audit": audit, "skew": skew,
        "backbone": "mobilenet_v2", "weights": DEFAULT_WEIGHTS.name, "commit": commit.strip(),
        "cpus": os.cpu_count(), "load_before": os.getloadavg()}, "seeds": []}
    results_path = RESULTS / f"{results_stem(audit, skew)}.json"
    for seed in seeds:
        work = WORK / results_stem(audit, skew) / f"seed-{seed}"
        data, cache = work / "data", work / "cache"
        truth = build_journey_folder(data, n_per_class=per_class, noise=noise, seed=seed, skew=skew, shared=SHARED)
        shutil.rmtree(cache, ignore_errors=True)
        embed_s, _ = coreclean("embed", str(data), "--cache", str(cache), "--backbone", "mobilenet_v2",
                               "--weights", str(DEFAULT_WEIGHTS))
        classes_s, out = coreclean("classes", "--cache", str(cache), "--json")
        recommended = [row["class"] for row in json.loads(out)][:3]
        entry: dict[str, Any] = {"seed": seed, "n_images": len(truth), "n_planted": int(truth["flipped"].sum()),
                                 "steps": {"embed": embed_s, "classes": classes_s}, "recommended": recommended,
                                 "sessions": [clean(cache, truth, recommended, allocation, batch, max_rounds, work,
                                                    audit) for allocation in ALLOCATIONS]}
        if seed == seeds[0] and timing_repeats:
            entry["thread_timings"] = _time_first_round(cache, truth, recommended, batch, timing_repeats, work)
        result["seeds"].append(entry)
        results_path.write_text(json.dumps(result, indent=1))  # what is done survives a failure
        print(f"seed {seed}: done", file=sys.stderr)
    result["settings"]["load_after"] = os.getloadavg()
    results_path.write_text(json.dumps(result, indent=1))
    return result


def _time_first_round(cache: Path, truth: pd.DataFrame, classes: list[str], batch: int, repeats: int,
                      work: Path) -> dict[str, dict[str, float]]:
    session = work / "timing-base.session"
    session.unlink(missing_ok=True)
    review_dir = work / "timing-review"
    shutil.rmtree(review_dir, ignore_errors=True)
    coreclean("session", "start", "--cache", str(cache), *class_flags(classes),
              "--per-class", str(batch), "--session", str(session))
    coreclean("session", "next", "--session", str(session), "--out", str(review_dir), "--no-sheet")
    sheet = review_dir / "round-1.csv"
    review(pd.read_csv(sheet, dtype=str, keep_default_na=False), dict(zip(truth["id"], truth["true_label"]))).to_csv(
        sheet, index=False)
    timings = {"as found": thread_timings(cache, classes, batch, session, sheet, repeats, work)}
    with busy_cores(os.cpu_count() or 2):
        timings["under load"] = thread_timings(cache, classes, batch, session, sheet, repeats, work)
    return timings


@contextlib.contextmanager
def busy_cores(n: int):
    """Keep ``n`` processes spinning (one per core) for the duration: the 'under load' setting."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def report(result: dict[str, Any]) -> str:
    """The results as Markdown: steps, estimates against the truth, verdicts, budget vs fixed, thread timings."""
    audit = result["settings"].get("audit", 0)
    audit_note = f" plus {audit} random audits (`--audit {audit}`)" if audit else ""
    skew = result["settings"].get("skew", 0)
    skew_note = f" (skewed toward a few classes, `--skew {skew:g}`)" if skew else ""
    lines = [f"Journey: {len(result['seeds'])} seeds, {result['settings']['per_class']} images a class, "
             f"{result['settings']['noise']:.0%} moved to a wrong class folder{skew_note}, {result['settings']['batch']} "
             f"reviews a class a round{audit_note}; MobileNetV2 trunk; commit {result['settings']['commit']}; "
             f"{result['settings']['cpus']} CPUs, load {result['settings']['load_before'][0]:.1f} at start.", ""]
    lines += ["| seed | classes | allocation | rounds | found | of planted there | stopped | embed s | classes s | "
              "start s | median next s | median apply s | worst est-true gap from round 2 |", "|" + "---|" * 13]
    for entry in result["seeds"]:
        for s in entry["sessions"]:
            planted = sum(s["initial_errors"].values())
            gaps = [abs(r["estimated_left"][c] - r["true_left"][c]) for r in s["rounds"][2:] for c in s["classes"]]
            lines.append(
                f"| {entry['seed']} | {', '.join(s['classes'])} | {s['allocation']} | {len(s['rounds']) - 1} | "
                f"{sum(r['found'] for r in s['rounds'])} | {planted} | {'yes' if s['stopped'] else 'no (cap)'} | "
                f"{entry['steps']['embed']:.1f} | {entry['steps']['classes']:.1f} | {s['steps']['session start']:.1f} | "
                f"{statistics.median(s['steps']['session next']):.1f} | "
                f"{statistics.median(s['steps']['session apply']):.1f} | {max(gaps) if gaps else float('nan'):.1f} |")
    lines += ["", "Estimated vs true errors left per class, by round (allocation `errors`):", ""]
    for entry in result["seeds"]:
        s = entry["sessions"][0]
        lines.append(f"seed {entry['seed']}: " + "; ".join(
            f"r{r['round']} " + ", ".join(f"{c} {r['estimated_left'].get(c, float('nan')):.1f}/{r['true_left'][c]}"
                                          for c in s["classes"]) + (" **stop**" if r["verdict"].startswith("stop") else "")
            for r in s["rounds"]))
    lines += ["", "Budget (`errors`) vs fixed quota: errors found so far after each round both sessions ran "
              "(equal reviews):", ""]
    for entry in result["seeds"]:
        by = {s["allocation"]: np.cumsum([r["found"] for r in s["rounds"][1:]]) for s in entry["sessions"]}
        if {"errors", "fixed"} <= by.keys():
            both = min(len(by["errors"]), len(by["fixed"]))
            lines.append(f"seed {entry['seed']}: " + ", ".join(
                f"r{k + 1} {by['errors'][k]} vs {by['fixed'][k]}" for k in range(both)))
    lines += ["", "Checks (issue #10's bars): estimate within max(5, 30% of true) from round 2; at the stop, the "
              "largest share of a class's initial errors left (bar: at most 20%); rounds from the first with "
              "fewer than 10% left in every class to the stop (bar: at most 1).", "",
              "| seed | allocation | within bar | share left at stop | rounds late |", "|---|---|---|---|---|"]
    for entry in result["seeds"]:
        for s in entry["sessions"]:
            lines.append(f"| {entry['seed']} | {s['allocation']} | " + " | ".join(session_checks(s)) + " |")
    timings = result["seeds"][0].get("thread_timings") or {}
    if timings:
        lines += ["", "Thread settings (seed 0, medians of interleaved runs, seconds; 'under load': one spinning "
                  "process per core beside them):", "",
                  "| machine | step | --threads 1 | --threads 2 | default | default / best |", "|---|---|---|---|---|---|"]
        for machine, steps in timings.items():
            for step, by in steps.items():
                best = min(by["--threads 1"], by["--threads 2"])
                lines.append(f"| {machine} | {step} | {by['--threads 1']:.2f} | {by['--threads 2']:.2f} | "
                             f"{by['default']:.2f} | {by['default'] / best:.2f} |")
    return "\n".join(lines) + "\n"


def session_checks(session: dict[str, Any]) -> list[str]:
    """The three bars of issue #10 for one session, as table cells (see :func:`report`)."""
    classes, rounds, initial = session["classes"], session["rounds"], session["initial_errors"]
    pairs = [(r["estimated_left"][c], r["true_left"][c]) for r in rounds[2:] for c in classes]
    within = sum(abs(est - true) <= max(5.0, 0.3 * true) for est, true in pairs)
    last = rounds[-1]
    share = (max(last["true_left"][c] / initial[c] for c in classes if initial[c]) if session["stopped"] else None)
    clean = next((r["round"] for r in rounds[1:]
                  if all(r["true_left"][c] < 0.1 * initial[c] for c in classes if initial[c])), None)
    late = (last["round"] - clean if session["stopped"] else f">{last['round'] - clean}") if clean is not None else "-"
    return [f"{within} of {len(pairs)}", "no stop" if share is None else f"{share:.0%}", str(late)]


def write_readme_block(markdown: str) -> None:
    """Replace the README block between the journey markers with ``markdown``."""
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- journey:start -->", "<!-- journey:end -->"
    if start not in text or end not in text:
        return
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    body = ("\nGenerated by `python -m benchmarks.journey` (results in `benchmarks/results/journey.json`); "
            "do not edit by hand.\n\n" + markdown)
    README.write_text(head + start + body + end + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.08)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--max-rounds", type=int, default=10)
    parser.add_argument("--timing-repeats", type=int, default=3)
    parser.add_argument("--audit", type=int, default=0, help="session start --audit K (0: none, the default)")
    parser.add_argument("--skew", type=float, default=0.0,
                        help="wrong folders skewed toward a few classes (benchmarks.journey_data; 0: uniform)")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README block")
    args = parser.parse_args(argv)
    if not (SHARED / "data" / "cifar10").is_dir():
        print(f"no CIFAR-10 data in {SHARED / 'data'}: the journey needs it", file=sys.stderr)
        return 2
    result = run(args.seeds, args.per_class, args.noise, args.batch, args.max_rounds, args.timing_repeats, args.audit,
                 args.skew)
    markdown = report(result)
    (RESULTS / f"{results_stem(args.audit, args.skew)}.md").write_text(markdown)
    if not args.no_readme and args.audit == 0 and not args.skew:
        write_readme_block(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
