"""What every protocol shares: scoring all rankers on one signal set, the test-set LR, run metadata, JSON I/O."""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from coreclean.evaluation.auroc import auroc as macro_auroc
from coreclean._internal.threads import limit_threads
from coreclean.scoring.confident_joint import estimate_errors_per_class
from coreclean.scoring.ranker import LabelIssueRanker
from coreclean.evaluation.ranking_metrics import ranking_report
from coreclean.scoring.methods import REGISTRY
from coreclean.scoring.signal_set import SignalSet

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# Which shared signal each timing key of SignalSet.timings belongs to, and what it needs in turn.
_SIGNAL_TIMING = {"model_features": ["projection"], "standardizer": ["projection"],
                  "out_of_fold": ["projection", "out_of_fold", "out_of_fold_update"],
                  "in_sample": ["projection", "in_sample"], "neighbors": ["neighbors"],
                  "neighbor_probs": ["neighbors"]}

# Rankers whose scores depend only on (features, labels, weights), never on the seed: computed once
# per label set and reused for the other seeds (class_leverage is an SVD per class, minutes at 50k).
DETERMINISTIC_RANKERS = ("class_leverage",)


def machine_info() -> dict[str, Any]:
    """Cores, load average, versions: recorded in every result file."""
    import sklearn

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    try:
        import cleanlab
        cleanlab_version = cleanlab.__version__
    except ImportError:
        cleanlab_version = None
    import coreclean

    return {"cpus": os.cpu_count(), "load_average": load, "python": sys.version.split()[0],
            "platform": platform.platform(), "numpy": np.__version__, "scikit_learn": sklearn.__version__,
            "cleanlab": cleanlab_version, "coreclean": coreclean.__version__, "git": git_state()}


def git_state() -> dict[str, Any]:
    """The commit the code was run at, and the files of ``coreclean/`` changed since (rankers change often)."""
    import subprocess

    def _git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": _git("rev-parse", "HEAD") or None,
            "modified_coreclean_files": [line[3:] for line in _git("status", "--porcelain", "--", "coreclean").splitlines()
                                         if line[:2].strip() and not line.startswith("??")]}


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=_json_default) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def clean_nan(value: Any) -> Any:
    """NaN -> None recursively, so the JSON stays standard."""
    if isinstance(value, dict):
        return {k: clean_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_nan(v) for v in value]
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return None
    return value


def mean_sd(values: list[float]) -> dict[str, float | None]:
    array = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(finite.mean()), "sd": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            "n": int(finite.size)}


class _Tracking(SignalSet):
    """A SignalSet that records which attributes a ranker reads (swapped in for one call)."""

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("__"):
            accessed = object.__getattribute__(self, "__dict__").setdefault("_accessed", set())
            accessed.add(name)
        return super().__getattribute__(name)


def run_ranker(name: str, signals: SignalSet, rng: np.random.Generator) -> tuple[np.ndarray, float, list[str]]:
    """Scores of ranker ``name``, its own seconds (shared signals excluded) and the shared signals it used."""
    before = dict(signals.timings)
    signals.__dict__["_accessed"] = set()
    signals.__class__ = _Tracking
    start = time.perf_counter()
    try:
        scores = np.asarray(REGISTRY[name](signals, rng).scores, dtype=np.float64)
    finally:
        elapsed = time.perf_counter() - start
        signals.__class__ = SignalSet
        accessed = signals.__dict__.pop("_accessed", set())
    computed_now = sum(signals.timings.get(k, 0.0) - before.get(k, 0.0) for k in signals.timings)
    used = sorted({key for attr in accessed for key in _SIGNAL_TIMING.get(attr, [])} & set(signals.timings))
    return scores, max(elapsed - computed_now, 0.0), used


def score_rankers(features: np.ndarray, labels: np.ndarray, is_error: np.ndarray, *, seed: int,
                  rankers: list[str] | None = None, with_cleanlab: bool = True, n_threads: int | None = None,
                  reuse: dict[str, tuple[np.ndarray, float]] | None = None,
                  ranker_params: dict[str, Any] | None = None, k: int = 1000) -> dict[str, Any]:
    """Fit one LabelIssueRanker, score every ranker on its signals and measure each ranking.

    ``reuse`` maps a deterministic ranker's name to ``(scores, seconds)`` from an earlier seed with
    the same labels (filled in here on first use). Returns ``{"rankers": {name: metrics}, "shared_seconds",
    "fit_seconds", "cleanlab": {...}}``; each ranker's ``seconds`` is its own time plus the time of
    the shared signals it used (so every ranker is charged as if run alone).
    """
    names = list(REGISTRY) if rankers is None else list(rankers)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    with limit_threads(n_threads):
        ranker = LabelIssueRanker(random_state=seed, **(ranker_params or {})).fit(features, labels)
    fit_seconds = time.perf_counter() - start
    signals = ranker.signals_
    results: dict[str, Any] = {}
    for name in names:
        if reuse is not None and name in reuse:
            scores, own = reuse[name]
            used: list[str] = []
            reused = True
        else:
            with limit_threads(n_threads):
                scores, own, used = run_ranker(name, signals, rng)
            reused = False
            if reuse is not None and name in DETERMINISTIC_RANKERS:
                reuse[name] = (scores, own)
        metrics = ranking_report(scores, is_error, k=k)
        metrics["own_seconds"] = own
        metrics["signals_used"] = used
        metrics["seconds"] = own + sum(signals.timings.get(key, 0.0) for key in used)
        metrics["reused_from_earlier_seed"] = reused
        results[name] = {"metrics": metrics, "scores": scores}
    out = {"rankers": results, "shared_seconds": dict(signals.timings), "fit_seconds": fit_seconds,
           "oof_accuracy_vs_given": float((signals.out_of_fold.probs_.argmax(axis=1) == labels).mean()),
           "estimated_errors": float(estimate_errors_per_class(signals.out_of_fold.probs_, labels).sum())}
    if with_cleanlab:
        out["cleanlab"] = cleanlab_rows(signals.out_of_fold.probs_, labels, is_error, k=k,
                                        oof_seconds=signals.timings.get("out_of_fold", 0.0)
                                        + signals.timings.get("projection", 0.0))
    return out


def cleanlab_rows(probs: np.ndarray, labels: np.ndarray, is_error: np.ndarray, *, k: int,
                  oof_seconds: float) -> dict[str, Any]:
    """cleanlab on the same out-of-fold probabilities: its quality scores as rankings, and find_label_issues."""
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        return {"available": False, "note": "pip install 'coreclean[bench]' for the cleanlab rows"}
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    out: dict[str, Any] = {"available": True}
    for method in ("self_confidence", "normalized_margin"):
        start = time.perf_counter()
        quality = get_label_quality_scores(labels, probs, method=method)
        seconds = time.perf_counter() - start
        metrics = ranking_report(-quality, is_error, k=k)
        metrics["seconds"] = seconds + oof_seconds
        out[f"get_label_quality_scores:{method}"] = metrics
    start = time.perf_counter()
    flagged = find_label_issues(labels, probs, n_jobs=1)
    seconds = time.perf_counter() - start
    n_flagged = int(flagged.sum())
    true_flags = int((flagged & is_error).sum())
    out["find_label_issues"] = {
        "n_flagged": n_flagged,
        "precision": true_flags / n_flagged if n_flagged else float("nan"),
        "recall": true_flags / max(int(is_error.sum()), 1),
        "seconds": seconds + oof_seconds,
    }
    return out


class TestModel:
    """The test-set LR: standardised features, inverse-class-frequency weights, warm-started refits.

    ``evaluate(labels, weights)`` fits on the training features with the given labels (weight 0 =
    dropped) and returns test accuracy and macro one-vs-rest AUROC against the clean test labels.
    """

    def __init__(self, train_features: np.ndarray, test_features: np.ndarray, test_labels: np.ndarray, *,
                 n_classes: int, C: float = 0.01, balanced: bool = True, max_iter: int = 300,
                 n_threads: int | None = 1) -> None:
        from coreclean.scoring.linear.standardize import Standardizer

        standardizer = Standardizer().fit(train_features)
        self.train = standardizer.transform(train_features)
        self.test = standardizer.transform(test_features)
        self.test_labels = np.asarray(test_labels, dtype=np.int64)
        self.n_classes = n_classes
        self.C = C
        self.balanced = balanced
        self.max_iter = max_iter
        self.n_threads = n_threads
        self._model = None

    def fit(self, labels: np.ndarray, weights: np.ndarray | None = None):
        from coreclean.scoring.linear.logistic import MultinomialLogistic

        weights = np.ones(labels.size) if weights is None else np.asarray(weights, dtype=np.float64)
        if self.balanced:
            counts = np.bincount(labels, weights=weights, minlength=self.n_classes)
            weights = weights * (weights.sum() / (self.n_classes * np.maximum(counts, 1e-12)))[labels]
        keep = weights > 0
        model = MultinomialLogistic(C=self.C, max_iter=self.max_iter, tol=1e-4)
        with limit_threads(self.n_threads):
            model.fit(self.train[keep], labels[keep], weights[keep], warm_start=self._model)
        self._model = model
        return model

    def predict_proba(self, model) -> np.ndarray:
        probs = np.zeros((self.test.shape[0], self.n_classes))
        probs[:, model.classes_] = model.predict_proba(self.test)
        return probs

    def evaluate(self, labels: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
        start = time.perf_counter()
        model = self.fit(labels, weights)
        probs = self.predict_proba(model)
        return {"test_accuracy": float((probs.argmax(axis=1) == self.test_labels).mean()),
                "test_auroc": float(macro_auroc(probs, self.test_labels)),
                "seconds": time.perf_counter() - start}


def save_figure_safely(fn, *args, **kwargs) -> Path | None:
    """Plots are a by-product: a plotting failure is logged, never fatal to a benchmark run."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - any matplotlib problem
        logger.warning("plot failed: %s", err)
        return None


class CVEvaluator:
    """Cross-validated macro AUROC on the current labels: fixed folds, one warm-started LR per fold.

    Standardised features, C = 0.01, out-of-fold probabilities, dropped samples left out, fitted
    with :class:`coreclean.scoring.linear.logistic.MultinomialLogistic` (about ten times faster than
    scikit-learn's LogisticRegression on 50k x 1280).
    """

    def __init__(self, features: np.ndarray, folds: np.ndarray, *, n_classes: int, C: float = 0.01,
                 max_iter: int = 300, n_threads: int | None = 1) -> None:
        from coreclean.scoring.linear.standardize import Standardizer

        self.scaled = Standardizer().fit(features).transform(features)
        self.folds = np.asarray(folds, dtype=np.int64)
        self.n_classes = n_classes
        self.C = C
        self.max_iter = max_iter
        self.n_threads = n_threads
        self._models: dict[int, Any] = {}

    def evaluate(self, labels: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
        from coreclean.scoring.linear.logistic import MultinomialLogistic

        start = time.perf_counter()
        weights = np.ones(labels.size) if weights is None else np.asarray(weights, dtype=np.float64)
        probs = np.zeros((labels.size, self.n_classes))
        with limit_threads(self.n_threads):
            for fold in np.unique(self.folds):
                train = np.flatnonzero((self.folds != fold) & (weights > 0))
                held_out = np.flatnonzero(self.folds == fold)
                model = MultinomialLogistic(C=self.C, max_iter=self.max_iter, tol=1e-4)
                model.fit(self.scaled[train], labels[train], weights[train], warm_start=self._models.get(fold))
                self._models[fold] = model
                probs[np.ix_(held_out, model.classes_)] = model.predict_proba(self.scaled[held_out])
        return {"cv_auroc": float(macro_auroc(probs, labels, weights)), "seconds": time.perf_counter() - start}
