"""What does checking an embedding set against its checksums cost, next to ranking it?

For each size, synthetic ``n × 512`` float32 features (:func:`benchmarks.scale.generate`) become a
cache through :func:`coreclean.embedding.own_features.write_feature_cache`. Then, interleaved
``--repeats`` times, :func:`coreclean.load_embeddings` is timed with the features' check forced
(``verified.json`` removed: sha256 of every block) and remembered (the memo matches: one ``stat``);
both include reading and checking ``samples.csv``. With ``--rank`` it also times ``coreclean rank
--cache`` end to end, forced and remembered, interleaved, so the share is measured, not estimated.

Usage (from the repository root)::

    python -m benchmarks.checksum_cost --sizes 50000 1000000 --rank 50000 --out benchmarks/results/checksum_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.scale import REPO, generate

WORK = REPO / "benchmarks" / "work" / "checksum"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 1_000_000])
    parser.add_argument("--rank", type=int, nargs="*", default=[], help="sizes at which to time `coreclean rank` too")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    runs = []
    for n in sorted(set(args.sizes) | set(args.rank)):
        cache = _cache(args.work, n)
        run = {"n_samples": n, "features_gib": n * 512 * 4 / 2**30, **_time_load(cache, args.repeats)}
        if n in args.rank:
            run.update(_time_rank(cache, args.repeats))
        print(json.dumps(run), flush=True)
        runs.append(run)
    if args.out is not None:
        command = "python -m benchmarks.checksum_cost " + " ".join(sys.argv[1:] if argv is None else argv)
        args.out.write_text(json.dumps({"benchmark": "checksum_cost", "command": command,
                                        "load_average_at_end": os.getloadavg(), "runs": runs}, indent=2))
    return 0


def _cache(work: Path, n: int) -> Path:
    """A cache holding ``n`` synthetic 512-d vectors (built once, then reused)."""
    from coreclean.embedding.own_features import write_feature_cache

    cache = work / f"cache_n{n}"
    if (cache / "done").is_file():
        return cache
    paths = generate(work / "data", n, 512, 10, 0.1, 0)
    labels = np.load(paths["labels"])
    manifest = work / f"manifest_n{n}.csv"
    pd.DataFrame({"path": [f"img/{i:07d}.png" for i in range(n)], "label": labels}).to_csv(manifest, index=False)
    write_feature_cache(cache, paths["features"], manifest, name="synthetic")
    (cache / "done").write_text("")
    return cache


def _memo(cache: Path) -> Path:
    return next((cache / "embeddings").glob("*/verified.json"))


def _time_load(cache: Path, repeats: int) -> dict:
    from coreclean import load_embeddings

    load_embeddings(cache)  # warm the page cache and write the memo, so both modes read from memory
    memo = _memo(cache)
    forced, remembered = [], []
    for _ in range(repeats):
        memo.unlink()
        start = time.perf_counter()
        load_embeddings(cache)
        forced.append(time.perf_counter() - start)
        start = time.perf_counter()
        load_embeddings(cache)
        remembered.append(time.perf_counter() - start)
    return {"load_forced_s": statistics.median(forced), "load_remembered_s": statistics.median(remembered),
            "check_s": statistics.median(f - r for f, r in zip(forced, remembered))}


def _time_rank(cache: Path, repeats: int) -> dict:
    command = [sys.executable, "-m", "coreclean", "-q", "rank", "--cache", str(cache), "--out",
               str(cache / "ranking.csv"), "--threads", "1"]
    forced, remembered = [], []
    for _ in range(repeats):
        for times, drop in ((forced, True), (remembered, False)):
            if drop:
                _memo(cache).unlink()
            start = time.perf_counter()
            subprocess.run(command, check=True)
            times.append(time.perf_counter() - start)
    return {"rank_forced_s": statistics.median(forced), "rank_remembered_s": statistics.median(remembered),
            "rank_forced_runs": forced, "rank_remembered_runs": remembered}


if __name__ == "__main__":
    raise SystemExit(main())
