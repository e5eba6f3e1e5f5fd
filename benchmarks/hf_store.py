"""What does taking a Hugging Face dataset in cost before embedding: storing its image bytes as files?

CIFAR-10 test (10,000 JPEGs from the shared tarball) becomes a saved ``DatasetDict``; then
:func:`coreclean.formats.hf_source.read_hf_dataset` is timed into an empty cache (every image written
to the content-addressed store, flushed together) and again (nothing written: resume). For
comparison, the first ``--durable-sample`` images are written one fsync each (``atomic_open`` with
its default ``durable=True``), the way a file-by-file atomic write would do it.

Usage (from the repository root)::

    python -m benchmarks.hf_store --out benchmarks/results/hf_store.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

from benchmarks.data import SHARED
from benchmarks.scale import REPO

WORK = REPO / "benchmarks" / "work" / "hf_store"
CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durable-sample", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import datasets

    from coreclean._internal.atomic import atomic_open
    from coreclean.formats.hf_source import read_hf_dataset

    datasets.disable_progress_bars()
    saved = args.work / "cifar10-test"
    if not saved.exists():
        data = SHARED / "data" / "cifar10"
        with tarfile.open(data / "cifar10_test_jpg.tar.gz") as tar:
            blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        order = (data / "test_order.txt").read_text().split()
        features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
        table = {"img": [{"bytes": blobs[p], "path": None} for p in order],
                 "label": [CLASSES.index(p.split("/")[1]) for p in order]}
        datasets.DatasetDict({"test": datasets.Dataset.from_dict(table, features=features)}).save_to_disk(str(saved))
    cache = args.work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    run: dict[str, float | int] = {}
    for name in ("first_s", "again_s"):
        start = time.perf_counter()
        manifest = read_hf_dataset(saved, cache, split="test")
        run[name] = round(time.perf_counter() - start, 3)
    run["n_images"] = len(manifest)
    durable = args.work / "durable"
    shutil.rmtree(durable, ignore_errors=True)
    start = time.perf_counter()
    for path in manifest.paths[: args.durable_sample]:
        data = path.read_bytes()
        target = durable / hashlib.sha256(data).hexdigest()[:2] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(target) as handle:
            handle.write(data)
    run["one_fsync_each_ms_per_image"] = round(1000 * (time.perf_counter() - start) / args.durable_sample, 2)
    run["flushed_together_ms_per_image"] = round(1000 * run["first_s"] / len(manifest), 2)
    print(json.dumps(run), flush=True)
    if args.out is not None:
        command = "python -m benchmarks.hf_store " + " ".join(sys.argv[1:] if argv is None else argv)
        args.out.write_text(json.dumps({"benchmark": "hf_store", "command": command,
                                        "load_average_at_end": os.getloadavg(), "runs": [run]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
