"""How long do a full ranking and a re-score after one review batch take at 50k, 200k and 1M samples, in how much memory?

Synthetic data: ``n × 512`` float32 embeddings of a mixture of 10 classes (class means plus a shared
48-d low-rank part plus isotropic noise, so neighbours and principal components mean something), with
10% of the labels flipped to another class. The matrix is generated in chunks straight into a
``.npy`` memmap under ``benchmarks/work/scale/`` (reused when present), so generation stays
memory-bounded. ``--cifar10n aggre`` (or ``random1``, ``worse``) ranks real data instead: the 50,000
CIFAR-10 train embeddings of P2 (MobileNetV2, 1280-d) with that CIFAR-10N label set, the clean labels
as the truth.

Each size runs, for each thread setting (``--threads 1 0``: one thread, then the libraries' default)
and ``--repeats`` times, a coreclean process and then a *peer* process, interleaved so both see the
same machine load. The peer is the plain pipeline a user could write instead: scikit-learn
``cross_val_predict(LogisticRegression())`` over 5 shuffled stratified folds, then
``cleanlab.rank.get_label_quality_scores``; it records ``fit_seconds`` (matrix in, scores out), its
thread count, peak RSS and the same quality figures (AUROC / average precision / recall at 10% of
the planted flips). ``summary`` holds per size and thread setting the medians and the ratio
coreclean / peer. The coreclean process

1. fits :class:`coreclean.LabelIssueRanker` (default method and settings; above ``max_fit_samples`` the
   fold models fit on sensitivity coresets) on the memmap: ``fit_seconds`` and ``signals_.timings``;
2. records one review batch of 50 among the top of the ranking (planted errors relabelled to the
   truth, 10 dropped, the rest verified) and calls ``rescore``: ``rescore_seconds`` =
   ``last_update_seconds_``;
3. optionally fits a fresh ranker on the same folds with the post-batch labels and weights
   (trusted samples carry ``trusted_weight`` as their sample weight, which is what the updated
   ranker's model fits see) and reports the Spearman correlation of the two score vectors over the
   kept samples, and the overlap of their top 1%;
4. above the exact-search limit, measures recall@10 of the approximate kNN graph against exact search
   for ``--recall-queries`` random rows (over all ``n`` rows);
5. with ``--engines local ray``, runs the same in a second process on a fresh local Ray
   (:class:`coreclean.engines.ray_blocks.RayBlocks`: its start-up in ``engine_startup_seconds``, not
   in ``fit_seconds``; ``blocks``, ``tasks`` and ``workers`` recorded; the peer runs beside the local
   engine only);
6. reads its own peak RSS (``ru_maxrss``, which counts resident pages of the memmap too) and the
   peak of anonymous memory (``RssAnon``, sampled every 20 ms: what the process allocated itself).

Usage (from the repository root)::

    nice -n 10 python -m benchmarks.scale --sizes 50000 200000 --threads 1 0 --repeats 3 --out benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "scale"
_GEN_ROWS = 65536
_LATENT_DIM = 48


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "scale.json")
    parser.add_argument("--n-features", type=int, default=512)
    parser.add_argument("--n-classes", type=int, default=10)
    parser.add_argument("--noise-rate", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=50, help="review batch size (default: 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spearman-max", type=int, default=1_000_000,
                        help="compare with a fresh fit up to this size (it costs one more full fit)")
    parser.add_argument("--recall-queries", type=int, default=1000,
                        help="rows whose approximate neighbours are checked against exact search (0: skip)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0],
                        help="thread settings to run, each for coreclean and the peer (0: the libraries' default; "
                             "default: 1 0)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="coreclean/peer pairs per size and thread setting, interleaved (default: 1)")
    parser.add_argument("--engines", nargs="+", choices=("local", "ray"), default=["local"],
                        help="engines to rank with, each in its own process (ray: a fresh local Ray; default: local)")
    parser.add_argument("--no-peer", action="store_true", help="skip the peer pipeline")
    parser.add_argument("--save-scores", action="store_true",
                        help="keep each coreclean run's scores as scores_n{N}_t{T}.npy in the data folder")
    parser.add_argument("--work", type=Path, default=WORK, help="where the generated matrices live")
    parser.add_argument("--profile", action="store_true", help="also write a cProfile of the fit and rescore")
    parser.add_argument("--cifar10n", choices=("aggre", "random1", "worse"),
                        help="rank the CIFAR-10 train embeddings (the P2 features) with this CIFAR-10N label set "
                             "instead of synthetic data; --sizes is then the 50,000 rows")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--peer-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        (args.threads,) = args.threads
        return _peer_child(args) if args.peer_child else _child(args)

    started = time.time()
    result = {
        "benchmark": "scale",
        "command": "python -m benchmarks.scale " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": _machine(),
        "git": _git_state(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("child", "size", "out", "peer_child", "engine")},
        "runs": [],
    }
    for n_samples in args.sizes:
        paths = dataset_paths(args, n_samples)
        if args.cifar10n:  # the real data set its own size, width and noise; the children are told them
            n_samples, args.n_features = np.load(paths["features"], mmap_mode="r").shape
            args.n_classes = 10
            args.noise_rate = float(np.mean(np.load(paths["labels"]) != np.load(paths["true"])))
        print(f"n={n_samples}: {paths['features'].name} ({paths['generate_seconds']:.0f} s to generate)", flush=True)
        settings = [(threads, repeat, engine) for threads in args.threads for repeat in range(args.repeats)
                    for engine in args.engines]
        for threads, repeat, engine in settings:
            run = _spawn(args, n_samples, threads, peer=False, engine=engine)
            if not args.no_peer and engine == "local":
                run["peer"] = _spawn(args, n_samples, threads, peer=True)
            run.update(generate_seconds=paths["generate_seconds"], repeat=repeat, load_average=list(os.getloadavg()))
            result["runs"].append(run)
            print(_row(run), flush=True)
            result["summary"] = _summary(result["runs"])
            result["total_seconds"] = time.time() - started
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"-> {args.out}")
    return 0


def _spawn(args: argparse.Namespace, n_samples: int, threads: int, *, peer: bool, engine: str = "local") -> dict:
    """Run one coreclean (or peer) measurement in a fresh process and return its record."""
    with tempfile.TemporaryDirectory() as tmp:
        child_out = Path(tmp) / "run.json"
        command = [sys.executable, "-m", "benchmarks.scale", "--child", str(child_out), "--size", str(n_samples),
                   "--n-features", str(args.n_features), "--n-classes", str(args.n_classes),
                   "--noise-rate", str(args.noise_rate), "--batch", str(args.batch), "--seed", str(args.seed),
                   "--spearman-max", str(args.spearman_max), "--recall-queries", str(args.recall_queries),
                   "--work", str(args.work), "--threads", str(threads), "--engine", engine]
        command += ["--cifar10n", args.cifar10n] if args.cifar10n else []
        command += ["--peer-child"] if peer else []
        command += ["--profile"] if args.profile and not peer else []
        command += ["--save-scores"] if args.save_scores and not peer else []
        completed = subprocess.run(command, cwd=REPO)
        if completed.returncode != 0:
            return {"n_samples": n_samples, "error": f"child exited with {completed.returncode}"}
        return json.loads(child_out.read_text(encoding="utf-8"))


def _summary(runs: list[dict]) -> list[dict]:
    """Per size and thread setting: median fit seconds of coreclean and the peer, and their ratio."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        if run.get("engine") == "local" and "error" not in run and "error" not in run.get("peer", {"error": 1}):
            groups.setdefault((run["n_samples"], run["thread_setting"]), []).append(run)
    summary = []
    for (n_samples, setting), group in groups.items():
        ours = float(np.median([r["fit_seconds"] for r in group]))
        peer = float(np.median([r["peer"]["fit_seconds"] for r in group]))
        summary.append({"n_samples": n_samples, "thread_setting": setting, "threads": group[0]["threads"],
                        "pairs": len(group), "fit_seconds_median": ours, "peer_fit_seconds_median": peer,
                        "ratio_coreclean_to_peer": ours / peer,
                        "auroc_median": float(np.median([r["auroc"] for r in group])),
                        "peer_auroc_median": float(np.median([r["peer"]["auroc"] for r in group])),
                        "load_average_1min": [r["load_average"][0] for r in group]})
    return summary


def _row(run: dict) -> str:
    if "error" in run:
        return f"n={run['n_samples']}: {run['error']}"
    spearman = run.get("spearman")
    peer = run.get("peer", {})
    versus = (f"; peer {peer['fit_seconds']:.1f} s, auroc {peer['auroc']:.4f}" if "fit_seconds" in peer
              else f"; peer {peer.get('error', 'skipped')}")
    return (f"n={run['n_samples']} {run.get('engine', 'local')} threads={run['threads']}: fit {run['fit_seconds']:.1f} s, "
            f"rescore {run['rescore_seconds']:.2f} s, peak RSS {run['peak_rss_gib']:.2f} GiB "
            f"(anon {run['peak_anon_gib']:.2f}), spearman {'-' if spearman is None else f'{spearman:.4f}'}, "
            f"auroc {run['auroc']:.4f}" + versus)


def _machine() -> dict:
    import faiss
    import scipy

    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "faiss": faiss.__version__,
    }


def _git_state() -> dict:
    from benchmarks.common import git_state

    return git_state()


# ------------------------------------------------------------------------------------------ data


def dataset_paths(args: argparse.Namespace, n_samples: int) -> dict:
    """The matrix, labels and true labels a run ranks: CIFAR-10 with ``--cifar10n``, else :func:`generate`'s."""
    if args.cifar10n:
        return cifar10n_arrays(args.work, args.cifar10n)
    return generate(args.work, n_samples, args.n_features, args.n_classes, args.noise_rate, args.seed)


def _arrays(folder: Path) -> tuple[dict, dict | None]:
    """The three array paths in ``folder``, and them with their generation time where a finished run left them."""
    paths = {"features": folder / "features.npy", "labels": folder / "labels.npy", "true": folder / "true_labels.npy"}
    done = folder / "done.json"
    if done.is_file():
        return paths, {**paths, "generate_seconds": json.loads(done.read_text())["seconds"]}
    return paths, None


def _finished(folder: Path, paths: dict, seconds: float) -> dict:
    (folder / "done.json").write_text(json.dumps({"seconds": seconds}))
    return {**paths, "generate_seconds": seconds}


def cifar10n_arrays(work: Path, label_set: str) -> dict:
    """Write (or reuse) the CIFAR-10 train embeddings as ``features.npy`` with a CIFAR-10N label set and the clean labels."""
    folder = work / f"cifar10n_{label_set}"
    paths, reused = _arrays(folder)
    if reused is not None:
        return reused
    from benchmarks.data import cifar10n_labels, load_cifar10

    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    dataset = load_cifar10()
    labels = cifar10n_labels(dataset)
    np.save(paths["features"], np.ascontiguousarray(dataset.features, dtype=np.float32))
    np.save(paths["labels"], labels[label_set])
    np.save(paths["true"], labels["clean"])
    return _finished(folder, paths, time.perf_counter() - start)


def generate(work: Path, n_samples: int, n_features: int, n_classes: int, noise_rate: float, seed: int) -> dict:
    """Write (or reuse) ``features.npy`` (memmap, float32), ``labels.npy`` (noisy) and ``true_labels.npy``."""
    folder = work / f"n{n_samples}_d{n_features}_k{n_classes}_r{noise_rate}_s{seed}"
    paths, reused = _arrays(folder)
    if reused is not None:
        return reused
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    base = np.random.default_rng([seed, 0])
    means = base.normal(size=(n_classes, n_features)).astype(np.float32) * 0.08
    loadings = (base.normal(size=(_LATENT_DIM, n_features)) / np.sqrt(_LATENT_DIM)).astype(np.float32)
    features = np.lib.format.open_memmap(paths["features"], mode="w+", dtype=np.float32, shape=(n_samples, n_features))
    true = np.empty(n_samples, dtype=np.int64)
    noisy = np.empty(n_samples, dtype=np.int64)
    for chunk, begin in enumerate(range(0, n_samples, _GEN_ROWS)):
        stop = min(begin + _GEN_ROWS, n_samples)
        rng = np.random.default_rng([seed, 1, chunk])
        labels = rng.integers(0, n_classes, stop - begin)
        latent = rng.standard_normal((stop - begin, _LATENT_DIM), dtype=np.float32)
        block = means[labels] + latent @ loadings
        block += rng.standard_normal(block.shape, dtype=np.float32) * np.float32(0.25)
        np.maximum(block, 0.0, out=block)  # ReLU features, as a CNN's pooled output
        features[begin:stop] = block
        flip = rng.random(stop - begin) < noise_rate
        shifted = (labels + rng.integers(1, n_classes, stop - begin)) % n_classes
        true[begin:stop] = labels
        noisy[begin:stop] = np.where(flip, shifted, labels)
    features.flush()
    del features
    np.save(paths["labels"], noisy)
    np.save(paths["true"], true)
    return _finished(folder, paths, time.perf_counter() - start)


# ------------------------------------------------------------------------------------------ one size


class _MemoryPeak:
    """Sample this process's ``RssAnon`` and ``VmRSS`` every ``interval`` seconds in a thread; keep the maxima."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.anon_kib, self.rss_kib = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    self.anon_kib = max(self.anon_kib, int(line.split()[1]))
                elif line.startswith("VmRSS:"):
                    self.rss_kib = max(self.rss_kib, int(line.split()[1]))

    def __enter__(self) -> "_MemoryPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _threads_in_use() -> int:
    """The most threads any loaded BLAS/OpenMP pool (faiss's included) may use right now."""
    from threadpoolctl import threadpool_info

    counts = [pool["num_threads"] for pool in threadpool_info()]
    try:
        import faiss

        counts.append(faiss.omp_get_max_threads())
    except ImportError:
        pass
    return max(counts, default=1)


def _child(args: argparse.Namespace) -> int:
    from coreclean._internal.threads import limit_threads

    with _MemoryPeak() as peak, limit_threads(args.threads or None), _engine(args.engine) as (engine, startup):
        run = _measure(args, peak, engine)
        run["engine_startup_seconds"] = startup
        run["threads"] = _threads_in_use()
    _finish(args, run, peak)
    return 0


def _finish(args: argparse.Namespace, run: dict, peak: _MemoryPeak) -> None:
    run["thread_setting"] = args.threads
    run["peak_rss_gib_total"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    run["peak_anon_gib_total"] = peak.anon_kib / 2**20
    run["features_gib"] = args.size * args.n_features * 4 / 2**30
    args.child.write_text(json.dumps(run, indent=2), encoding="utf-8")


def _peer_child(args: argparse.Namespace) -> int:
    """The plain pipeline a user could write instead: 5 shuffled stratified folds of scikit-learn's
    ``LogisticRegression`` (its defaults) via ``cross_val_predict``, then ``cleanlab.rank.get_label_quality_scores``.
    Timed from the memmap to the scores, like coreclean's fit."""
    from cleanlab.rank import get_label_quality_scores
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from coreclean._internal.threads import limit_threads

    paths = dataset_paths(args, args.size)
    labels, true = np.load(paths["labels"]), np.load(paths["true"])
    with _MemoryPeak() as peak, limit_threads(args.threads or None):
        start = time.perf_counter()
        features = np.load(paths["features"])
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=args.seed)
        probs = cross_val_predict(LogisticRegression(), features, labels, cv=folds, method="predict_proba")
        quality = get_label_quality_scores(labels, probs)
        run = {"n_samples": args.size, "engine": "local", "pipeline": "sklearn cross_val_predict + cleanlab",
               "fit_seconds": time.perf_counter() - start, "threads": _threads_in_use(),
               **_quality(labels != true, 1.0 - quality)}
        peak.sample()
        run["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        run["peak_anon_gib"] = peak.anon_kib / 2**20
    _finish(args, run, peak)
    return 0


def _quality(is_error: np.ndarray, scores: np.ndarray) -> dict:
    from coreclean.evaluation.ranking_metrics import ranking_report

    report = ranking_report(scores, is_error)
    return {"auroc": report["auroc"], "average_precision": report["average_precision"],
            "recall_at_10pct": report["recall_at_10pct"]}


def _measure(args: argparse.Namespace, peak: _MemoryPeak, engine) -> dict:
    """One coreclean run's record; ``engine`` is None (here) or an entered ``RayBlocks``."""
    from scipy.stats import spearmanr

    from coreclean import LabelIssueRanker

    paths = dataset_paths(args, args.size)
    features = np.load(paths["features"], mmap_mode="r")
    labels = np.load(paths["labels"])
    true = np.load(paths["true"])
    run: dict = {"n_samples": args.size, "engine": args.engine, "n_features": args.n_features,
                 "n_classes": args.n_classes, "noise_rate": args.noise_rate, "seed": args.seed}

    profiler = _profiler(args)
    ranker = LabelIssueRanker(random_state=args.seed, engine=engine)
    start = time.perf_counter()
    ranker.fit(features, labels)
    run["fit_seconds"] = time.perf_counter() - start
    run["fit_timings"] = dict(ranker.signals_.timings)
    run.update(_quality(labels != true, ranker.scores_))
    if args.save_scores:
        np.save(paths["features"].parent / f"scores_n{args.size}_t{args.threads}.npy", ranker.scores_)
    run["max_fit_samples"] = ranker.max_fit_samples

    # one review batch among the most suspicious samples
    candidates = ranker.ranking()[: args.batch]
    wrong = candidates[labels[candidates] != true[candidates]]
    relabel = wrong[: max(1, args.batch // 2)]
    rest = candidates[~np.isin(candidates, relabel)]
    drop, verify = rest[:10], rest[10:]
    ranker.relabel(relabel, true[relabel]).drop(drop).verify(verify)
    before = dict(ranker.signals_.timings)
    ranker.rescore()
    run["rescore_seconds"] = ranker.last_update_seconds_
    run["rescore_timings"] = {k: v - before.get(k, 0.0) for k, v in ranker.signals_.timings.items()
                              if v - before.get(k, 0.0) > 0}
    run["batch"] = {"relabel": int(relabel.size), "drop": int(drop.size), "verify": int(verify.size)}
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(args.work / f"profile_n{args.size}.prof"))
        run["profile"] = str(args.work / f"profile_n{args.size}.prof")
    # the ranking's own peak, before the checks below add a second ranker and an exact search
    peak.sample()
    run["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    run["peak_anon_gib"] = peak.anon_kib / 2**20

    if args.size <= args.spearman_max:
        fresh = LabelIssueRanker(random_state=args.seed, folds=ranker.signals_.out_of_fold.folds_)
        trust = np.where(ranker.trusted_, ranker.trusted_weight, 1.0)
        start = time.perf_counter()
        fresh.fit(features, ranker.labels_, ranker.sample_weight_ * trust)
        run["fresh_fit_seconds"] = time.perf_counter() - start
        kept = ranker.sample_weight_ > 0
        run["spearman"] = float(spearmanr(ranker.scores_[kept], fresh.scores_[kept]).statistic)
        top = max(1, int(0.01 * kept.sum()))
        updated_top = np.argsort(-np.where(kept, ranker.scores_, -np.inf), kind="stable")[:top]
        fresh_top = np.argsort(-np.where(kept, fresh.scores_, -np.inf), kind="stable")[:top]
        run["top1pct_overlap"] = float(np.intersect1d(updated_top, fresh_top).size / top)
        del fresh
    else:
        run["spearman"] = None

    run["neighbor_graph_built"] = "neighbors" in ranker.signals_.__dict__  # the pilot can skip it above 250k rows
    if args.recall_queries and args.size > _exact_limit() and run["neighbor_graph_built"]:
        run["knn_recall_at_10"] = _knn_recall(features, ranker.signals_.neighbors[0], args.recall_queries, args.seed)
    if engine is None:
        run.update(blocks=1, tasks=None, workers=1)  # each pass is one block, here
    else:
        run.update(blocks=engine.info["blocks"], tasks=engine.info["tasks"], workers=engine.info["cpus"])
    return run


@contextlib.contextmanager
def _engine(name: str):
    """Yield ``(engine, start-up seconds)``: None (rank here, one block per pass), or a
    :class:`~coreclean.engines.ray_blocks.RayBlocks` on a fresh local Ray, shut down on leaving."""
    if name == "local":
        yield None, 0.0
        return
    from coreclean.engines.ray_blocks import RayBlocks

    start = time.perf_counter()
    with RayBlocks() as engine:
        yield engine, time.perf_counter() - start


def _exact_limit() -> int:
    from coreclean._internal.knn_index import EXACT_SEARCH_LIMIT

    return EXACT_SEARCH_LIMIT


def _knn_recall(features: np.ndarray, found: np.ndarray, n_queries: int, seed: int) -> dict:
    """Share of the exact k nearest neighbours (cosine, self excluded) that the graph holds, for random rows.

    Exact search is a chunked brute force (query block times each data block), so it needs no second
    copy of the matrix.
    """
    rng = np.random.default_rng([seed, 2])
    queries = np.sort(rng.choice(features.shape[0], size=min(n_queries, features.shape[0]), replace=False))
    k = found.shape[1]
    query = np.array(features[queries], dtype=np.float32)
    query /= np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    best_sims = np.full((queries.size, k), -np.inf, dtype=np.float32)
    best_rows = np.full((queries.size, k), -1, dtype=np.int64)
    start = time.perf_counter()
    for begin in range(0, features.shape[0], _GEN_ROWS):
        block = np.array(features[begin : begin + _GEN_ROWS], dtype=np.float32)
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        sims = query @ block.T
        own = (queries >= begin) & (queries < begin + block.shape[0])
        sims[np.flatnonzero(own), queries[own] - begin] = -np.inf  # self excluded
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        merged_sims = np.hstack([best_sims, np.take_along_axis(sims, top, axis=1)])
        merged_rows = np.hstack([best_rows, top + begin])
        keep = np.argsort(-merged_sims, axis=1, kind="stable")[:, :k]
        best_sims = np.take_along_axis(merged_sims, keep, axis=1)
        best_rows = np.take_along_axis(merged_rows, keep, axis=1)
    seconds = time.perf_counter() - start
    hits = sum(np.intersect1d(best_rows[i], found[q]).size for i, q in enumerate(queries))
    return {"recall": float(hits / (k * queries.size)), "n_queries": int(queries.size), "k": int(k),
            "exact_search_seconds": seconds}


def _profiler(args: argparse.Namespace):
    if not args.profile:
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


if __name__ == "__main__":
    raise SystemExit(main())
