"""How many of the true nearest neighbours does coreclean's kNN graph find on real embeddings?

``benchmarks.scale`` measures recall on synthetic data, where every neighbour of a point is nearly
as far as any other and recall says little. This compares coreclean's kNN graph on CIFAR-10 train
embeddings with exact cosine neighbours in the *full* embedding space (brute force over the unit
rows), on both of its branches, whatever the data's size: candidates by exact search in the reduced
space (``exact`` forced on; what data up to :data:`coreclean._internal.knn_index.EXACT_SEARCH_LIMIT`
samples get) and by the IVF-PQ fast-scan index (``approximate``, forced on; what larger data get), each re-ranked in the
full space. It reports recall@10 and recall@k and what the kNN signal actually uses, the share of
neighbours that carry the sample's own label.

    python -m benchmarks.knn_recall                       # the P2 features (all 50k, embedded if needed)
    python -m benchmarks.knn_recall --cache DIR           # any coreclean embedding cache, e.g. a 10k subset
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine_info, write_json
from coreclean._internal.knn import knn_graph
from coreclean._internal.threads import limit_threads

RESULTS = Path(__file__).resolve().parent / "results"


def _exact(features: np.ndarray, k: int, block: int = 4096) -> np.ndarray:
    """Exact k nearest cosine neighbours (self excluded) by brute force over the full columns."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    found = np.empty((unit.shape[0], k), dtype=np.int64)
    for start in range(0, unit.shape[0], block):
        sims = unit[start : start + block] @ unit.T
        sims[np.arange(sims.shape[0]), np.arange(start, start + sims.shape[0])] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        found[start : start + sims.shape[0]] = np.take_along_axis(top, order, axis=1)
    return found


def _recall(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    return float(np.mean([np.intersect1d(a[:k], b[:k]).size for a, b in zip(found, exact)]) / k)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=20, help="neighbours per sample (the ranker's default)")
    parser.add_argument("--cache", type=Path, help="a coreclean embedding cache (default: the P2 CIFAR-10 train set)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "knn_recall.json")
    args = parser.parse_args(argv)
    if args.cache is not None:
        import coreclean

        embeddings = coreclean.load_embeddings(args.cache)
        features, labels = np.ascontiguousarray(embeddings.features, dtype=np.float32), embeddings.labels
        data = f"{features.shape[0]} CIFAR-10 train images, cache {args.cache}"
    else:
        from benchmarks.data import Backbone, load_cifar10

        dataset = load_cifar10(Backbone())
        features, labels = dataset.features, dataset.labels
        data = f"CIFAR-10 train, {dataset.backbone}"
    timings, graphs = {}, {}
    with limit_threads(args.threads):
        start = time.perf_counter()
        exact = _exact(features, args.k)
        timings["full_space_exact"] = time.perf_counter() - start
        for name, options in (("exact", {"exact_limit": features.shape[0]}), ("approximate", {"exact_limit": 0})):
            start = time.perf_counter()
            graphs[name] = knn_graph(features, args.k, **options)[0]
            timings[name] = time.perf_counter() - start
    own = labels[:, None]
    branches = {name: {"recall_at_10": _recall(found, exact, 10), "recall_at_k": _recall(found, exact, args.k),
                       "same_label_share": float(np.mean(labels[found] == own)), "seconds": timings[name]}
                for name, found in graphs.items()}
    result = {
        "benchmark": "knn_recall", "command": "python -m benchmarks.knn_recall" + (f" --cache {args.cache}" if args.cache else ""),
        "data": data, "n_samples": int(features.shape[0]), "n_features": int(features.shape[1]), "k": args.k,
        "threads": args.threads, "branches": branches, "full_space_exact_seconds": timings["full_space_exact"],
        "same_label_share_exact": float(np.mean(labels[exact] == own)), "machine": machine_info(),
    }
    write_json(args.out, result)
    for name, row in branches.items():
        print(f"{name}: recall@10 {row['recall_at_10']:.3f}, recall@{args.k} {row['recall_at_k']:.3f}, "
              f"same-label share {row['same_label_share']:.3f} (exact {result['same_label_share_exact']:.3f}), "
              f"{row['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
