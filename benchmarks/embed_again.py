"""Embedding again with nothing new: answered from ``cache/requests.json`` vs the ordinary path, as users run it.

    python -m benchmarks.embed_again [--per-class 300] [--repeats 3]

Builds the journey's seed-0 folder (:func:`benchmarks.journey_data.build_journey_folder`), embeds it
once with ``coreclean embed DATA --cache CACHE --backbone mobilenet_v2 --weights W`` (a subprocess,
default settings), then times the same command ``--repeats`` times each way, interleaved: with the
record of the earlier request (:mod:`coreclean.embedding.reuse`, no torch imported) and with
``requests.json`` deleted first (the ordinary path: torch and the model loaded, every hash checked
against the chunks, the set republished). Writes ``benchmarks/results/embed_again.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.data import DEFAULT_WEIGHTS, REPO, SHARED
from benchmarks.journey import coreclean
from benchmarks.journey_data import build_journey_folder

WORK = REPO / "benchmarks" / "work" / "embed_again"
RESULTS = REPO / "benchmarks" / "results"


def run(per_class: int, repeats: int) -> dict[str, Any]:
    """Time the no-op re-embed both ways; return (and write) ``settings``, ``first_s`` and ``seconds`` per way."""
    data, cache = WORK / "data", WORK / "cache"
    truth = build_journey_folder(data, n_per_class=per_class, noise=0.08, seed=0, shared=SHARED)
    shutil.rmtree(cache, ignore_errors=True)
    command = ("embed", str(data), "--cache", str(cache), "--backbone", "mobilenet_v2", "--weights", str(DEFAULT_WEIGHTS))
    first_s, _ = coreclean(*command)
    seconds: dict[str, list[float]] = {"from the record": [], "ordinary path": []}
    for _ in range(repeats):
        (cache / "requests.json").unlink(missing_ok=True)
        seconds["ordinary path"].append(coreclean(*command)[0])  # records the request again
        elapsed, out = coreclean(*command)
        if "(0 newly computed)" not in out:
            raise RuntimeError(f"the re-run computed something: {out}")
        seconds["from the record"].append(elapsed)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    result = {"settings": {"n_images": len(truth), "repeats": repeats, "backbone": "mobilenet_v2",
                           "weights": DEFAULT_WEIGHTS.name, "commit": commit.strip(), "cpus": os.cpu_count(),
                           "load_before": os.getloadavg()},
              "first_s": first_s, "seconds": seconds,
              "median_s": {way: statistics.median(values) for way, values in seconds.items()}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embed_again.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "embed_again.md").write_text(report(result))
    return result


def report(result: dict[str, Any]) -> str:
    """The Markdown table of ``embed_again.json``."""
    settings, median = result["settings"], result["median_s"]
    lines = [f"# Embedding again with nothing new ({settings['n_images']} images, commit {settings['commit']})", "",
             f"`python -m benchmarks.embed_again`; {settings['cpus']} CPUs; first embed {result['first_s']:.1f} s; "
             f"{settings['repeats']} interleaved runs each way.", "",
             "| way | runs (s) | median s |", "|---|---|---|"]
    for way, values in result["seconds"].items():
        lines.append(f"| {way} | {', '.join(f'{v:.2f}' for v in values)} | {median[way]:.2f} |")
    ratio = median["ordinary path"] / median["from the record"]
    lines += ["", f"The record answers {ratio:.1f}x faster than the ordinary path."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not Path(SHARED).is_dir() or not Path(DEFAULT_WEIGHTS).is_file():
        print(f"needs {SHARED} (CIFAR-10 and the MobileNetV2 trunk)", file=sys.stderr)
        return 1
    print(report(run(args.per_class, args.repeats)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
