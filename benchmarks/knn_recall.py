"""How much does the approximate (IVF) neighbour search lose on real embeddings?

``benchmarks.scale`` measures recall on synthetic Gaussian data, where every neighbour of a point is
nearly as far as any other and recall says little. This runs coreclean's kNN graph twice on the
CIFAR-10 train embeddings (the P2 features, PCA to the ranker's 512 components): exact, and with the
IVF index forced on (``exact_limit=0``), and reports recall@k and what the kNN signal actually uses,
the share of neighbours that carry the sample's own label.

    python -m benchmarks.knn_recall            # writes benchmarks/results/knn_recall.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine_info, write_json
from benchmarks.data import Backbone, load_cifar10
from coreclean._internal.knn import knn_graph
from coreclean._internal.threads import limit_threads
from coreclean.scoring.linear.projection import PCAProjection

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=20, help="neighbours per sample (the ranker's default)")
    parser.add_argument("--components", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "knn_recall.json")
    args = parser.parse_args(argv)
    dataset = load_cifar10(Backbone())
    features = PCAProjection(args.components).fit(dataset.features).transform(dataset.features)
    features = np.ascontiguousarray(features, dtype=np.float32)
    timings, graphs = {}, {}
    with limit_threads(args.threads):
        for name, limit in (("exact", None), ("ivf", 0)):
            start = time.perf_counter()
            graphs[name] = knn_graph(features, args.k, **({} if limit is None else {"exact_limit": limit}))[0]
            timings[name] = time.perf_counter() - start
    exact, approx = graphs["exact"], graphs["ivf"]
    recall = float(np.mean([np.intersect1d(a, b).size for a, b in zip(exact, approx)]) / args.k)
    own = dataset.labels[:, None]
    result = {
        "benchmark": "knn_recall", "command": "python -m benchmarks.knn_recall", "data": f"CIFAR-10 train, {dataset.backbone}",
        "n_samples": int(features.shape[0]), "n_features": int(features.shape[1]), "k": args.k, "threads": args.threads,
        "recall_at_k": recall, "exact_seconds": timings["exact"], "ivf_seconds": timings["ivf"],
        "same_label_share_exact": float(np.mean(dataset.labels[exact] == own)),
        "same_label_share_ivf": float(np.mean(dataset.labels[approx] == own)),
        "machine": machine_info(),
    }
    write_json(args.out, result)
    print(f"recall@{args.k} {recall:.3f}; same-label share exact {result['same_label_share_exact']:.3f}, "
          f"IVF {result['same_label_share_ivf']:.3f}; exact {timings['exact']:.1f} s, IVF {timings['ivf']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
