"""Scale-out measurements for the embedding step.

``python benchmarks/scale_out.py gpu --images DIR --weights W.pth`` measures the single-GPU path: images/s of
mobilenet_v2 in fp32, bf16 and fp16 autocast (channels-last, pinned host memory), with the JPEGs decoded
on CPU (:class:`coreclean.embedding.backbones.Preprocess` in DataLoader workers) or on the GPU
(``torchvision.io.decode_jpeg(device="cuda")`` in batches), and the min cosine of each precision's
features against fp32 (:data:`coreclean.embedding.embed.BF16_VALIDATED` needs >= 0.999).
``python benchmarks/scale_out.py local-vs-ray --n 1000`` times the same embed locally and on a local Ray
(start-up included), interleaved. Results go to ``benchmarks/results/scale_out.json`` under the mode's name.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as F

from coreclean.embedding.backbones import build_feature_extractor, default_preprocess
from coreclean.embedding.embed import _collate, _ImageFiles, _prepare_model

RESULTS = Path(__file__).parent / "results" / "scale_out.json"
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _gpu_decode_batches(paths: list[Path], preprocess, batch_size: int):
    """Yield uint8 (n, 3, crop, crop) CUDA batches decoded and resized on the GPU."""
    for start in range(0, len(paths), batch_size):
        data = [torchvision.io.read_file(str(p)) for p in paths[start:start + batch_size]]
        images = torchvision.io.decode_jpeg(data, device="cuda", mode=torchvision.io.ImageReadMode.RGB)
        out = [F.center_crop(F.resize(im, [preprocess.resize_size], antialias=True), [preprocess.crop_size])
               for im in images]
        yield torch.stack(out)


def _cpu_decode_batches(paths: list[Path], preprocess, batch_size: int, workers: int):
    """Yield uint8 pinned CPU batches decoded by the library's own Preprocess in DataLoader workers."""
    loader = DataLoader(_ImageFiles(paths, preprocess), batch_size=batch_size, num_workers=workers,
                        collate_fn=_collate, pin_memory=True, prefetch_factor=4)
    for _, batch, _ in loader:
        yield batch


def _run(model, preprocess, batches, dtype) -> tuple[float, torch.Tensor]:
    """Return (images/s, features) for one pass over ``batches``."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    outs = []
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
        for batch in batches:
            x = preprocess.normalize(batch.to("cuda", non_blocking=True)).contiguous(memory_format=torch.channels_last)
            outs.append(model(x).float())
    feats = torch.cat(outs)
    torch.cuda.synchronize()
    return len(feats) / (time.perf_counter() - start), feats


def gpu(args: argparse.Namespace) -> dict:
    """Measure the single-GPU embed path; return the results dict."""
    paths = sorted(Path(args.images).rglob("*.jpg"))[: args.n]
    extractor = build_feature_extractor("mobilenet_v2", weights=args.weights)
    preprocess = default_preprocess("mobilenet_v2", image_size=args.image_size)
    model = _prepare_model(extractor.model, torch.device("cuda"))
    rates: dict[str, list[float]] = {}
    feats: dict[str, torch.Tensor] = {}
    for rep in range(args.reps + 1):  # rep 0 warms up (cudnn autotune, worker start)
        for decode in ("cpu", "gpu"):
            for name, dtype in _DTYPES.items():
                batches = (_gpu_decode_batches(paths, preprocess, args.batch_size) if decode == "gpu"
                           else _cpu_decode_batches(paths, preprocess, args.batch_size, args.workers))
                rate, f = _run(model, preprocess, batches, dtype)
                if rep:
                    rates.setdefault(f"{decode}-decode/{name}", []).append(rate)
                feats[f"{decode}/{name}"] = f
    cos = {}
    for decode in ("cpu", "gpu"):
        for name in ("bf16", "fp16"):
            c = torch.nn.functional.cosine_similarity(feats[f"{decode}/{name}"], feats[f"{decode}/fp32"])
            cos[f"{decode}-decode/{name}"] = {"min": float(c.min()), "mean": float(c.mean())}
    c = torch.nn.functional.cosine_similarity(feats["gpu/fp32"], feats["cpu/fp32"])
    cos["gpu-vs-cpu-decode/fp32"] = {"min": float(c.min()), "mean": float(c.mean())}
    return {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__, "n_images": len(paths),
        "image_size": args.image_size, "batch_size": args.batch_size, "cpu_decode_workers": args.workers,
        "images_per_s_median": {k: statistics.median(v) for k, v in rates.items()},
        "images_per_s_all": rates, "cosine_vs_fp32": cos,
    }


def local_vs_ray(args: argparse.Namespace) -> dict:
    """Embed ``args.n`` generated images locally and on a local Ray, interleaved; return the wall times."""
    import shutil
    import tempfile

    import numpy as np
    from PIL import Image

    from coreclean.embedding.embed import embed_dataset
    from coreclean.engines.ray_embed import RayEmbedder

    root = Path(tempfile.mkdtemp(prefix="scale_out-"))
    rng = np.random.default_rng(0)
    for i in range(args.n):
        folder = root / "data" / f"c{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    options = dict(backbone="resnet18", weights="none", image_size=args.image_size, device="cpu",
                   precision="fp32", batch_size=64, workers=2, progress=False)
    times: dict[str, list[float]] = {"local": [], "ray": []}
    info = {}
    try:
        for rep in range(args.reps):
            for engine in ("local", "ray"):
                cache = root / f"cache-{engine}-{rep}"
                compute = RayEmbedder() if engine == "ray" else None
                start = time.perf_counter()
                embed_dataset(root / "data", cache, **options, compute=compute)
                times[engine].append(time.perf_counter() - start)
                if compute is not None:
                    info = compute.info
    finally:
        shutil.rmtree(root)
    return {"n_images": args.n, "image_size": args.image_size, "wall_s": times, "ray_info": info,
            "median_s": {k: statistics.median(v) for k, v in times.items()},
            "ray_over_local": statistics.median(times["ray"]) / statistics.median(times["local"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    g = sub.add_parser("gpu", help="measure the single-GPU path")
    g.add_argument("--images", required=True)
    g.add_argument("--weights", required=True)
    g.add_argument("--n", type=int, default=4000)
    g.add_argument("--image-size", type=int, default=224)
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--workers", type=int, default=12)
    g.add_argument("--reps", type=int, default=3)
    g.add_argument("--out", default=str(RESULTS))
    r = sub.add_parser("local-vs-ray", help="local vs local-Ray embedding wall time on this machine")
    r.add_argument("--n", type=int, default=1000)
    r.add_argument("--image-size", type=int, default=64)
    r.add_argument("--reps", type=int, default=3)
    r.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    result = gpu(args) if args.mode == "gpu" else local_vs_ray(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {}
    data[args.mode] = result
    out.write_text(json.dumps(data, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
