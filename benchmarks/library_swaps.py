"""Does each hand-written numeric piece of coreclean beat the well-kept library doing the same job, on this project's data?

For each pair (hand-written, library) it times both on the same input, interleaved ``--repeats``
times (median seconds and the ratio library / hand-written), records each one's peak of
Python-allocated memory (``tracemalloc``, which sees numpy's buffers) and checks they agree:

- ``logistic``: :class:`~coreclean.scoring.linear.logistic.MultinomialLogistic` vs scikit-learn's
  ``LogisticRegression`` (lbfgs, same C, same tolerance) on one fold's training part (80%) of the
  synthetic ``benchmarks.scale`` matrix, standardised, float32; agreement = the largest coefficient
  difference;
- ``pca``: :class:`~coreclean.scoring.linear.projection.PCAProjection` vs
  ``PCA(svd_solver="covariance_eigh")``, fit of 128 components on the read-only memmap;
  agreement = the cosines of the principal angles between the two subspaces (1 = same subspace);
- ``standardize``: :class:`~coreclean.scoring.linear.standardize.Standardizer` vs
  ``StandardScaler.partial_fit`` in the same chunks; agreement = the largest difference of the scales;
- ``bootstrap_auroc``: :func:`~coreclean.evaluation.auroc.bootstrap_auroc` (200 weighted draws) vs a
  loop of ``roc_auc_score(..., sample_weight=counts * weight)`` per draw and class; agreement = the
  difference of the point AUROC.

    nice -n 10 python -m benchmarks.library_swaps --n-samples 50000 --repeats 3   # -> benchmarks/results/library_swaps.json
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benchmarks.common import machine_info, write_json
from benchmarks.scale import WORK, generate
from coreclean._internal.threads import limit_threads

RESULTS = Path(__file__).resolve().parent / "results"


def _median_seconds(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def _pair(name: str, ours, library, agreement, repeats: int) -> dict:
    """Time ``ours`` and ``library`` alternately; return medians, the ratio and the agreement figure."""
    ours_times, library_times, results, peaks = [], [], {}, {}
    for _ in range(repeats):
        for label, fn, bucket in (("ours", ours, ours_times), ("library", library, library_times)):
            start = time.perf_counter()
            results[label] = fn()
            bucket.append(time.perf_counter() - start)
    for label, fn in (("ours", ours), ("library", library)):  # peak memory, in a separate untimed call
        tracemalloc.start()
        fn()
        peaks[f"{label}_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    row = {"pair": name, "ours_seconds": float(np.median(ours_times)), "library_seconds": float(np.median(library_times)),
           "ours_times": ours_times, "library_times": library_times, **peaks,
           **agreement(results["ours"], results["library"])}
    row["library_over_ours"] = row["library_seconds"] / row["ours_seconds"]
    print(f"{name}: ours {row['ours_seconds']:.3f} s, library {row['library_seconds']:.3f} s "
          f"(library/ours {row['library_over_ours']:.2f}); peak MiB ours {row['ours_peak_mib']:.0f}, "
          f"library {row['library_peak_mib']:.0f}; " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()
                                                                     if k.startswith("agree")), flush=True)
    return row


def logistic_pair(features: np.ndarray, labels: np.ndarray, repeats: int, C: float = 0.01) -> dict:
    from sklearn.linear_model import LogisticRegression

    from coreclean.scoring.linear.logistic import MultinomialLogistic

    train = np.arange(labels.size)[np.arange(labels.size) % 5 != 0]
    x = features[train]
    x = ((x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)).astype(np.float32)
    y = labels[train]
    ours = lambda: MultinomialLogistic(C=C, tol=1e-5, max_iter=200).fit(x, y)  # noqa: E731
    library = lambda: LogisticRegression(C=C, tol=1e-5, max_iter=200).fit(x, y)  # noqa: E731

    def agreement(a, b) -> dict:
        return {"agree_max_coef_diff": float(np.abs(a.coef_ - b.coef_).max()),
                "agree_coef_scale": float(np.abs(a.coef_).max()), "ours_iterations": int(a.n_iter_),
                "library_iterations": int(np.max(b.n_iter_))}

    return _pair("logistic", ours, library, agreement, repeats)


def pca_pair(features: np.ndarray, repeats: int, n_components: int = 128) -> dict:
    from sklearn.decomposition import PCA

    from coreclean.scoring.linear.projection import PCAProjection

    def ours():
        return PCAProjection(n_components).fit(features).components_

    def library():
        return PCA(n_components, svd_solver="covariance_eigh").fit(features).components_.T

    def agreement(a, b) -> dict:
        cosines = np.linalg.svd(a.T.astype(np.float64) @ b.astype(np.float64), compute_uv=False)
        return {"agree_min_principal_cosine": float(cosines.min())}

    return _pair("pca", ours, library, agreement, repeats)


def standardize_pair(features: np.ndarray, repeats: int, chunk: int = 16384) -> dict:
    from sklearn.preprocessing import StandardScaler

    from coreclean.scoring.linear.standardize import Standardizer

    def library():
        scaler = StandardScaler()
        for start in range(0, features.shape[0], chunk):
            scaler.partial_fit(features[start : start + chunk])
        return scaler

    def agreement(a, b) -> dict:
        return {"agree_max_scale_diff": float(np.abs(a.scale_ - b.scale_).max())}

    return _pair("standardize", lambda: Standardizer().fit(features), library, agreement, repeats)


def bootstrap_pair(labels: np.ndarray, repeats: int, n_boot: int = 200, n_classes: int = 10) -> dict:
    from sklearn.metrics import roc_auc_score

    from coreclean.evaluation.auroc import bootstrap_auroc

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(n_classes), size=labels.size)
    probs[np.arange(labels.size), labels] += 0.5
    weight = np.where(rng.random(labels.size) < 0.05, 0.0, 1.0)

    def library():
        draws = np.random.default_rng(1)
        point = np.mean([roc_auc_score(labels == k, probs[:, k], sample_weight=weight) for k in range(n_classes)])
        values = []
        for _ in range(n_boot):
            counts = draws.multinomial(labels.size, np.full(labels.size, 1.0 / labels.size)) * weight
            values.append(np.mean([roc_auc_score(labels == k, probs[:, k], sample_weight=counts) for k in range(n_classes)]))
        return point, *np.quantile(values, [0.025, 0.975])

    def agreement(a, b) -> dict:
        return {"agree_point_diff": abs(a[0] - b[0]), "agree_interval_width_ours": a[2] - a[1],
                "agree_interval_width_library": b[2] - b[1]}

    ours = lambda: bootstrap_auroc(probs, labels, weight, n_boot=n_boot, random_state=1)  # noqa: E731
    return _pair("bootstrap_auroc", ours, library, agreement, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bootstrap-samples", type=int, default=10_000, help="samples of the bootstrap pair (a review session's size)")
    parser.add_argument("--pairs", nargs="+", default=["logistic", "pca", "standardize", "bootstrap_auroc"])
    parser.add_argument("--out", type=Path, default=RESULTS / "library_swaps.json")
    args = parser.parse_args(argv)
    paths = generate(WORK, args.n_samples, 512, 10, 0.1, 0)
    features = np.load(paths["features"], mmap_mode="r")  # as the ranker gets it from the cache
    labels = np.load(paths["labels"])
    rows = []
    with limit_threads(args.threads):
        for name in args.pairs:
            if name == "logistic":
                rows.append(logistic_pair(features, labels, args.repeats))
            elif name == "pca":
                rows.append(pca_pair(features, args.repeats))
            elif name == "standardize":
                rows.append(standardize_pair(features, args.repeats))
            elif name == "bootstrap_auroc":
                rows.append(bootstrap_pair(labels[: args.bootstrap_samples], args.repeats))
    write_json(args.out, {"benchmark": "library_swaps", "command": "python -m benchmarks.library_swaps",
                          "data": f"benchmarks.scale synthetic {args.n_samples} x 512, 10 classes", "threads": args.threads,
                          "repeats": args.repeats, "pairs": rows, "machine": machine_info()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
