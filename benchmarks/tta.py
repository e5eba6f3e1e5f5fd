"""What does test-time augmentation (``coreclean embed --tta flip``) buy, and what does it cost?

* ``cost``: ``coreclean embed`` as a user runs it (a subprocess; the benchmarks' MobileNetV2 weights,
  otherwise default settings) on ``--n-images`` CIFAR-10 test images into fresh caches, without and
  with ``--tta flip``, interleaved, ``--repeats`` times; the median wall seconds of each, and the
  flip run after a plain one into the same cache (what adding ``--tta flip`` later costs).
* ``compare``: two P2 results files from one session, on the plain and on the flip features
  (``python -m benchmarks.run P2 --out DIR`` and ``... --tta flip --out DIR2``): every ranker's AUROC,
  average precision and P@|E|/2 on each noise set side by side, the change, and the change per extra
  embedding second per 1,000 images (from the ``cost`` results).

Both write ``benchmarks/results/tta.json`` (each part under its own key) and ``tta.md``.

    python -m benchmarks.tta cost --n-images 500 --repeats 3
    python -m benchmarks.tta compare --plain benchmarks/results/p2_plain/p2.json --flip benchmarks/results/p2_tta/p2.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, machine_info, write_json
from benchmarks.data import DEFAULT_WEIGHTS, WORK, prepare_cifar_folders

METRICS = ("auroc", "average_precision", "precision_at_half_errors")


def _embed(source: Path, cache: Path, *, tta: str) -> float:
    command = [sys.executable, "-m", "coreclean", "--quiet", "embed", str(source), "--cache", str(cache),
               "--backbone", "mobilenet_v2", "--weights", str(DEFAULT_WEIGHTS), "--tta", tta]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _sample_folder(root: Path, n_images: int) -> Path:
    """The first ``n_images`` CIFAR-10 test images (round-robin over the classes), as a folder tree."""
    data_root = WORK / "cifar10"
    prepare_cifar_folders(data_root)
    classes = sorted(p for p in (data_root / "test").iterdir() if p.is_dir())
    files = [sorted(c.iterdir()) for c in classes]
    for i in range(n_images):
        source = files[i % len(classes)][i // len(classes)]
        target = root / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return root


def measure_cost(n_images: int, repeats: int) -> dict[str, Any]:
    """Median wall seconds of ``embed`` without and with ``--tta flip`` into fresh caches, and of flip after plain."""
    times: dict[str, list[float]] = {"none": [], "flip": [], "flip_after_plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = _sample_folder(Path(tmp) / "images", n_images)
        for repeat in range(repeats):
            for tta in ("none", "flip"):
                times[tta].append(_embed(folder, Path(tmp) / f"{tta}-{repeat}", tta=tta))
            times["flip_after_plain"].append(_embed(folder, Path(tmp) / f"none-{repeat}", tta="flip"))
    median = {name: statistics.median(values) for name, values in times.items()}
    return {"n_images": n_images, "repeats": repeats, "seconds": times, "median_seconds": median,
            "extra_seconds_per_1000_images": (median["flip"] - median["none"]) * 1000 / n_images,
            "images_per_second": {name: n_images / value for name, value in median.items()}}


def compare(plain_path: Path, flip_path: Path, cost: dict[str, Any] | None) -> dict[str, Any]:
    """Per noise set and ranker: the plain and flip means of :data:`METRICS`, their change, and change per extra second."""
    plain, flip = (json.loads(Path(p).read_text(encoding="utf-8")) for p in (plain_path, flip_path))
    extra = cost["extra_seconds_per_1000_images"] if cost else None
    table: dict[str, Any] = {}
    for noise, entry in plain["noise"].items():
        if noise not in flip["noise"]:
            continue
        rankers_plain = entry["summary"]["rankers"]
        rankers_flip = flip["noise"][noise]["summary"]["rankers"]
        rows = {}
        for name in rankers_plain:
            if name not in rankers_flip or name == "random":
                continue
            row = {}
            for metric in METRICS:
                before, after = rankers_plain[name][metric]["mean"], rankers_flip[name][metric]["mean"]
                row[metric] = {"plain": before, "flip": after, "change": after - before,
                               "sd_plain": rankers_plain[name][metric]["sd"], "sd_flip": rankers_flip[name][metric]["sd"]}
                if extra:
                    row[metric]["change_per_extra_second_per_1000"] = (after - before) / extra
            rows[name] = row
        accuracy = {label: source["noise"][noise]["summary"]["oof_accuracy_vs_given"]["mean"]
                    for label, source in (("plain", plain), ("flip", flip))}
        table[noise] = {"rankers": rows, "oof_accuracy_vs_given": accuracy}
    return {"plain": str(plain_path), "flip": str(flip_path), "seeds": plain.get("seeds"),
            "plain_backbone": plain.get("backbone"), "flip_backbone": flip.get("backbone"), "noise": table}


def write_markdown(results: dict[str, Any], path: Path) -> None:
    """``tta.md``: the cost line and one table per noise set."""
    lines = ["# Test-time augmentation (`embed --tta flip`)", ""]
    cost = results.get("cost")
    if cost:
        m = cost["median_seconds"]
        lines += [f"Cost (`{cost['command']}`): `coreclean embed` of {cost['n_images']} CIFAR-10 images, median of "
                  f"{cost['repeats']}: {m['none']:.1f} s plain, {m['flip']:.1f} s with `--tta flip` "
                  f"(+{cost['extra_seconds_per_1000_images']:.1f} s per 1,000 images), {m['flip_after_plain']:.1f} s "
                  "for `--tta flip` after a plain embed into the same cache.", ""]
    quality = results.get("compare")
    if quality:
        lines += [f"Quality (`{quality['command']}`): P2 on the plain features ({quality['plain']}) and on the flip "
                  f"features ({quality['flip']}), seeds {quality['seeds']}, mean over seeds. A table of its own: "
                  "other inputs, not a rival ranker.", ""]
        for noise, entry in quality["noise"].items():
            acc = entry["oof_accuracy_vs_given"]
            lines += [f"## {noise} (out-of-fold accuracy vs the given labels {acc['plain']:.4f} plain, "
                      f"{acc['flip']:.4f} flip)", "",
                      "| ranker | AUROC plain | flip | change | AP plain | flip | P@\\|E\\|/2 plain | flip |",
                      "|---|---|---|---|---|---|---|---|"]
            for name, row in entry["rankers"].items():
                a, ap, p = row["auroc"], row["average_precision"], row["precision_at_half_errors"]
                lines.append(f"| {name} | {a['plain']:.4f} | {a['flip']:.4f} | {a['change']:+.4f} | "
                             f"{ap['plain']:.4f} | {ap['flip']:.4f} | {p['plain']:.4f} | {p['flip']:.4f} |")
            lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tta", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    cost = sub.add_parser("cost", help="time embed without and with --tta flip")
    cost.add_argument("--n-images", type=int, default=500)
    cost.add_argument("--repeats", type=int, default=3)
    quality = sub.add_parser("compare", help="P2 on plain vs flip features")
    quality.add_argument("--plain", type=Path, required=True)
    quality.add_argument("--flip", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=RESULTS / "tta.json")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.tta " + shlex.join(sys.argv[1:] if argv is None else argv)
    results: dict[str, Any] = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    if args.part == "cost":
        results["cost"] = {"command": command, "machine": machine_info(), **measure_cost(args.n_images, args.repeats)}
    else:
        results["compare"] = {"command": command, **compare(args.plain, args.flip, results.get("cost"))}
    write_json(args.out, results)
    write_markdown(results, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
