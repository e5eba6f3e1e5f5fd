"""Where does a million-row neighbour graph spend its time, and what would other index settings buy?

Issue #13 asks for 1M x 512 ranked in a minute on 2 cores; the neighbour graph alone takes ~150 s.
This builds the graph of ``benchmarks.scale``'s synthetic matrix the way
:func:`coreclean._internal.knn.knn_graph` does (reduced rows, IVF-PQ fast-scan candidates refined in
the reduced space, exact full-space re-rank), once with the product's settings and once per variant,
and records per variant: the stage times (train, add, search, re-rank), recall@10 against exact
full-space neighbours for sampled rows, the share of the product's neighbours it keeps, and the
AUROC of the neighbour vote alone (the kNN signal's share of disagreeing neighbours) against the
planted errors.

On this synthetic data every neighbour is nearly as far as any other: recall is low for every
setting and the vote's AUROC is near chance (~0.57), so the data cannot say what a variant costs in
ranking quality, only what it saves in time and how far its neighbours move.

    python -m benchmarks.knn_variants                                  # 1M rows, every variant
    python -m benchmarks.knn_variants --size 200000 --variants product probes32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.common import machine_info, write_json
from benchmarks.scale import _knn_recall, generate
from coreclean._internal import knn_index as knn
from coreclean._internal.threads import limit_graph_search_threads
from coreclean.scoring.signals import neighbor_label_distribution

RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path(__file__).resolve().parent / "work" / "scale"

#: Index settings tried, as changes to the product's (``product``: what knn_graph builds).
VARIANTS = {
    "product": {},
    "refine2": {"refine_factor": 2},
    "probes32": {"probes": 32},
    "dims64": {"dims": 64},
    "dims64_refine2": {"dims": 64, "refine_factor": 2},
    "reference200k": {"reference_rows": 200_000},
    "hnsw_lists16_probes32": {"lists_per_root": 16, "probes": 32, "hnsw": True},
}


def _graph(features: np.ndarray, *, dims: int = knn.SEARCH_DIMS, refine_factor: int = knn.REFINE_FACTOR,
           probes: int = knn.IVF_PROBES, lists_per_root: float = knn.IVF_LISTS_PER_ROOT, hnsw: bool = False,
           reference_rows: int | None = None, k: int = 20) -> tuple[np.ndarray, dict]:
    """Neighbours of every row (``knn_graph``'s stages, settings as given) and each stage's seconds.

    ``reference_rows``: only that many random rows are indexed (every row is still a query).
    """
    import faiss

    n_samples = features.shape[0]
    seconds = {}
    start = time.perf_counter()
    reduced, norms = knn._reduced_rows_and_norms(features, dims, random_state=0)
    seconds["reduce"] = time.perf_counter() - start
    rng = np.random.default_rng(0)
    reference = (np.arange(n_samples) if reference_rows is None
                 else np.sort(rng.choice(n_samples, size=reference_rows, replace=False)))
    n_lists = max(1, round(lists_per_root * np.sqrt(reference.size)))
    coarse = f"IVF{n_lists}_HNSW32" if hnsw else f"IVF{n_lists}"
    base = faiss.index_factory(dims, f"{coarse},PQ{knn._n_codes(dims)}x4fsr", faiss.METRIC_INNER_PRODUCT)
    base.cp.min_points_per_centroid = base.pq.cp.min_points_per_centroid = 1
    base.nprobe = min(probes, n_lists)
    training = reference[np.sort(rng.choice(reference.size, size=min(reference.size, 32 * n_lists), replace=False))]
    start = time.perf_counter()
    base.train(reduced[training])
    seconds["train"] = time.perf_counter() - start
    if hnsw:
        faiss.downcast_index(base.quantizer).hnsw.efSearch = max(2 * probes, 64)
    index = faiss.IndexRefineFlat(base)
    index.k_factor = refine_factor
    start = time.perf_counter()
    index.add(reduced[reference])
    seconds["add"] = time.perf_counter() - start
    n_candidates = knn.CANDIDATE_FACTOR * k
    found = np.empty((n_samples, n_candidates + 1), dtype=np.int64)
    start = time.perf_counter()
    for first in range(0, n_samples, 16384):
        last = min(first + 16384, n_samples)
        found[first:last] = index.search(reduced[first:last], n_candidates + 1)[1]
    seconds["search"] = time.perf_counter() - start
    found = np.where(found >= 0, reference[np.maximum(found, 0)], -1)
    del reduced, index
    start = time.perf_counter()
    _, _, indices, similarities = knn.rerank_block(features, 0, n_samples, found, norms, n_candidates, k)
    seconds["rerank"] = time.perf_counter() - start
    similarities[indices < 0] = 0.0
    return (indices, similarities), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--recall-queries", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--out", type=Path, default=RESULTS / "knn_variants_1m.json")
    args = parser.parse_args(argv)
    paths = generate(args.work, args.size, 512, 10, 0.1, 0)
    features = np.load(paths["features"], mmap_mode="r")
    labels, true = np.load(paths["labels"]), np.load(paths["true"])
    is_error = labels != true
    variants = ["product"] + [v for v in args.variants if v != "product"]
    product_rows = np.random.default_rng(1).choice(args.size, size=min(args.size, 20_000), replace=False)
    runs, product = [], None
    machine = machine_info()
    for name in variants:
        with limit_graph_search_threads(args.size, knn.SEARCH_DIMS):
            (indices, similarities), seconds = _graph(features, **VARIANTS[name])
        vote = neighbor_label_distribution(indices, similarities, labels, np.ones(args.size), 10)
        run = {"variant": name, "settings": VARIANTS[name], "seconds": seconds, "total_seconds": sum(seconds.values()),
               "vote_auroc": float(roc_auc_score(is_error, 1.0 - vote[np.arange(args.size), labels])),
               "recall_at_k": _knn_recall(features, indices, args.recall_queries, 0)}
        if product is None:
            product = indices[product_rows]
        else:
            kept = [np.intersect1d(a, b).size for a, b in zip(indices[product_rows], product)]
            run["share_of_product_neighbours"] = float(np.mean(kept) / indices.shape[1])
        runs.append(run)
        print(f"{name}: {run['total_seconds']:.1f} s "
              + ", ".join(f"{stage} {value:.1f}" for stage, value in seconds.items())
              + f"; recall@20 {run['recall_at_k']['recall']:.3f}, vote AUROC {run['vote_auroc']:.4f}"
              + (f", product's neighbours kept {run['share_of_product_neighbours']:.3f}" if "share_of_product_neighbours" in run else ""),
              flush=True)
    write_json(args.out, {"benchmark": "knn_variants", "size": args.size, "machine": machine, "runs": runs})
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
