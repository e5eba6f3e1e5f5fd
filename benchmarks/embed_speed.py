"""How fast is coreclean's embedding pipeline compared with a plain torchvision loop?

Both embed the same image files with the same backbone, weights, resolution and thread count:

* ``torchvision_plain``: ``ImageFolder`` + the weights' own preset transform
  (``torchvision.transforms._presets.ImageClassification``: PIL decode, resize, crop, normalise),
  ``DataLoader(batch_size=64)`` in the main process, eval mode, ``torch.inference_mode``, fp32.
* ``coreclean_*``: :func:`coreclean.embed_dataset` end to end into a fresh cache (hashing, decoding
  in DataLoader workers, uint8 batches, folded batch norms, channels-last, optional bf16 autocast,
  chunk commits and ``features.npy`` assembly all included in the time).

Each configuration runs ``--repeats`` times; the median images/s is reported. Per-sample cosine
similarity of coreclean's features against the plain loop's (fp32) and of bf16 against fp32 is
recorded, since ``--precision auto`` may pick bf16 only where cosine stays >= 0.999.

Usage (from the repository root)::

    python -m benchmarks.embed_speed --n-images 2000 --image-sizes 128 224
    python -m benchmarks.embed_speed --backbone resnet18 --weights none   # 512-d, same harness
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

import coreclean
from coreclean.embedding.backbones import build_feature_extractor, default_preprocess
from coreclean.embedding.embed import resolve_precision

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CIFAR_TAR = SHARED / "data" / "cifar10" / "cifar10_test_jpg.tar.gz"
MOBILENET = SHARED / "weights" / "mobilenet_v2_imagenet_features_torchvision.pth"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "benchmarks" / "work" / "cifar10_jpg",
                        help="folder-per-class images (extracted from the shared CIFAR-10 test tarball if absent)")
    parser.add_argument("--n-images", type=int, default=2000, help="images to extract when --data is absent")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--weights", default=str(MOBILENET) if MOBILENET.is_file() else "none")
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--workers", type=int, default=None, help="coreclean decode workers (default: its own)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "embed_speed.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    data = _ensure_data(args.data, args.n_images)
    n_files = sum(1 for p in data.rglob("*") if p.is_file())
    cpu_precision = resolve_precision("auto", backbone=args.backbone, device=torch.device("cpu"))
    results = []
    for size in args.image_sizes:
        row = {"image_size": size}
        base_times, base_features = [], None
        for _ in range(args.repeats):
            seconds, base_features = _plain_torchvision(data, args.backbone, args.weights, size)
            base_times.append(seconds)
        row["torchvision_plain"] = _summary(base_times, n_files)
        features = {}
        for precision in ("fp32", "bf16"):
            times = []
            for _ in range(args.repeats):
                seconds, features[precision] = _coreclean(data, args, size, precision)
                times.append(seconds)
            row[f"coreclean_{precision}"] = _summary(times, n_files)
        row["cosine_coreclean_fp32_vs_plain"] = _cosine(features["fp32"], base_features)
        row["cosine_bf16_vs_fp32"] = _cosine(features["bf16"], features["fp32"])
        row["auto_precision"] = cpu_precision
        best = row[f"coreclean_{cpu_precision}"]["images_per_s"]
        row["ratio_auto_vs_plain"] = round(best / row["torchvision_plain"]["images_per_s"], 2)
        row["ratio_fp32_vs_plain"] = round(
            row["coreclean_fp32"]["images_per_s"] / row["torchvision_plain"]["images_per_s"], 2
        )
        print(json.dumps(row), file=sys.stderr)
        results.append(row)

    report = {
        "command": "python -m benchmarks.embed_speed " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "backbone": args.backbone,
        "weights": args.weights if args.weights == "none" else Path(args.weights).name,
        "n_images": n_files,
        "data": "CIFAR-10 test JPEGs (32x32), first images per class of the shared tarball",
        "threads": args.threads,
        "repeats": args.repeats,
        "statistic": "median images/s over repeats, wall clock, end to end",
        "baseline": "ImageFolder + ImageClassification preset (PIL), DataLoader(batch_size=64, num_workers=0), fp32",
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "processor": platform.processor() or platform.machine(),
                    "bf16_native": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())},
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "python": platform.python_version(), "coreclean": coreclean.__version__},
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


def _ensure_data(folder: Path, n_images: int) -> Path:
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    if not CIFAR_TAR.is_file():
        raise SystemExit(f"no images at {folder} and no CIFAR-10 tarball at {CIFAR_TAR}; pass --data DIR.")
    per_class = max(1, n_images // 10)
    counts: dict[str, int] = {}
    with tarfile.open(CIFAR_TAR) as archive:
        for member in archive:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or counts.get(parts[1], 0) >= per_class:
                continue
            counts[parts[1]] = counts.get(parts[1], 0) + 1
            target = folder / parts[1] / parts[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())
            if sum(counts.values()) >= per_class * 10:
                break
    return folder


def _plain_torchvision(data: Path, backbone: str, weights: str, size: int) -> tuple[float, np.ndarray]:
    model = build_feature_extractor(backbone, weights=weights).model.eval()
    ours = default_preprocess(backbone, image_size=size)
    transform = ImageClassification(
        crop_size=size, resize_size=ours.resize_size, mean=ours.mean, std=ours.std,
        interpolation=InterpolationMode(ours.interpolation),
    )
    loader = DataLoader(ImageFolder(str(data), transform=transform), batch_size=64, num_workers=0)
    outputs = []
    start = time.perf_counter()
    with torch.inference_mode():
        for images, _ in loader:
            outputs.append(model(images).numpy())
    return time.perf_counter() - start, np.concatenate(outputs)


def _coreclean(data: Path, args: argparse.Namespace, size: int, precision: str) -> tuple[float, np.ndarray]:
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        coreclean.embed_dataset(
            data, cache, backbone=args.backbone, weights=args.weights, device="cpu", image_size=size,
            precision=precision, workers=args.workers, progress=False,
        )
        seconds = time.perf_counter() - start
        return seconds, np.array(coreclean.load_embeddings(cache).features)


def _summary(times: list[float], n_images: int) -> dict:
    return {"images_per_s": round(n_images / statistics.median(times), 1),
            "seconds": [round(t, 2) for t in times]}


def _cosine(a: np.ndarray, b: np.ndarray) -> dict:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = (a * b).sum(axis=1)
    return {"min": round(float(cos.min()), 6), "mean": round(float(cos.mean()), 6)}


if __name__ == "__main__":
    raise SystemExit(main())
