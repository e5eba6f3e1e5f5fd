"""How many labels are wrong, read without ground truth: three counts against the truth, on P3 and P2.

The sum of the default's scores is what ``classes``, a session's baseline and the errors left before
any review report, and it is off both ways (P3 digits 10 % uniform: below the truth; P3's CIFAR-10
slice at 0.5 %: eight times above it). This benchmark puts it beside two counts that need no ground
truth, each also used to shift the scores by one logit offset (:func:`coreclean.scoring.recalibration.
shift_to_error_count`, a monotone map) so their calibration can be read:

- ``confident_joint``: the off-diagonal sum of cleanlab's confident joint on the pooled out-of-fold
  probabilities (:func:`coreclean.scoring.confident_joint.estimate_errors_per_class`);
- ``counterfactual``: a mixture-proportion bound (:func:`counterfactual_error_count`, a candidate kept
  here, not in the library). A wrong label is a sample of one class carrying another's label, so if
  errors were drawn like that at random, their scores would be distributed as the scores every
  sample *would* get under another label (weighted by the posterior's flows between classes): a
  known component of the mixture the given labels' scores form. Above a high threshold the clean
  samples thin out, so the errors number at most ``#{scores >= t} / P(counterfactual >= t)``; the
  count is the least such bound over thresholds putting 95 % ... 10 % of the counterfactual scores
  above them, read where at least 20 scores lie above (Blanchard, Lee and Scott 2010; Garg et al.
  2021 bound a mixture proportion from one tail in the same way).

It was chosen on P3 and a 1,500-image CIFAR folder and checked on P2, where it fails: human errors
are not drawn at random from a class, they are the ambiguous images, whose scores sit far below
the counterfactual ones, so the tail bound reads a small fraction of them. That is why the product
does not use it (see ``benchmarks/results/error_count.md``).

    python -m benchmarks.error_count [--seeds 3]   # writes benchmarks/results/error_count.json and .md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info, write_json
from benchmarks.data import cifar10n_labels, cifar_available, load_cifar10, load_digits_dataset
from benchmarks.p3 import NOISE_SETTINGS, cifar_subset
from coreclean.evaluation.calibration import calibration_report
from coreclean.scoring.confident_joint import estimate_errors_per_class
from coreclean.scoring.methods import pooled_probs
from coreclean.scoring.noise_prior import estimate_noise_structure
from coreclean.scoring.ranker import LabelIssueRanker
from coreclean.scoring.recalibration import shift_to_error_count
from coreclean.simulate.noise import inject_noise

RESULTS = Path(__file__).resolve().parent / "results"
COUNTS = ("sum_of_scores", "confident_joint", "counterfactual")
#: Shares of the counterfactual scores above each threshold tried: from the bulk to the tail.
LEVELS = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1)
MIN_TAIL_COUNT = 20


def counterfactual_error_count(probs: np.ndarray, labels: np.ndarray, joint: np.ndarray, *,
                               pseudo_count: float = 1.0) -> float | None:
    """Tail bound on the number of wrong labels from the scores at counterfactual labels; None when too few scores.

    ``probs`` are the pooled out-of-sample class probabilities, ``joint`` the noise joint the
    default's posterior uses (rows: given labels), ``pseudo_count`` as in ``true_label_posterior``.
    """
    n_samples, n_classes = probs.shape
    smoothed = np.asarray(joint, dtype=np.float64) + pseudo_count
    likelihood = smoothed / np.maximum(smoothed.sum(axis=0), 1e-12)[None, :]  # [y, k] ∝ P(given y | true k)
    # [i, y]: the score sample i would have were its label y (1 - P(true y | x_i, given y)).
    scores = 1.0 - probs * np.diag(likelihood)[None, :] / np.maximum(probs @ likelihood.T, 1e-300)
    rows = np.arange(n_samples)
    given_scores = scores[rows, labels]
    # How often the noise sends class k to label y: the posterior's flows, summed over samples.
    true_given = probs * likelihood[labels]
    true_given /= np.maximum(true_given.sum(axis=1, keepdims=True), 1e-300)
    flows = np.zeros((n_classes, n_classes))
    np.add.at(flows, labels, true_given)
    np.fill_diagonal(flows, 0.0)
    flows += 1e-3  # no flow ruled out
    weights = flows[:, labels].T.copy()  # [i, y] ∝ P(given y | true = label_i)
    weights[rows, labels] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    order = np.argsort(-scores, axis=None, kind="stable")
    sorted_scores = scores.ravel()[order]
    share_above = np.cumsum(weights.ravel()[order]) / n_samples
    ranked = np.sort(given_scores)[::-1]
    bounds = []
    for level in LEVELS:
        threshold = sorted_scores[min(np.searchsorted(share_above, level), sorted_scores.size - 1)]
        above = int(np.searchsorted(-ranked, -threshold, side="right"))
        if above >= MIN_TAIL_COUNT:
            bounds.append(above / level)
    return min(bounds) if bounds else None


def measure(features: np.ndarray, labels: np.ndarray, clean: np.ndarray, *, seed: int) -> dict[str, Any]:
    """The three counts and the calibration of the scores shifted to each, for one label set."""
    ranker = LabelIssueRanker(random_state=seed).fit(features, labels)
    probs = pooled_probs(ranker.signals_)
    scores = ranker.scores_
    is_error = labels != clean
    counts = {"sum_of_scores": float(scores.sum()),
              "confident_joint": float(estimate_errors_per_class(probs, labels).sum()),
              "counterfactual": counterfactual_error_count(probs, labels, estimate_noise_structure(probs, labels).joint)}
    row: dict[str, Any] = {"n_samples": int(labels.size), "n_errors": int(is_error.sum()), "counts": counts}
    for name, count in counts.items():
        shifted = scores
        if name != "sum_of_scores" and count is not None:
            shifted = shift_to_error_count(scores, float(np.clip(count, 0.5, labels.size - 0.5)))[0]
        report = calibration_report(shifted, is_error)
        row[name] = {"ece": report["ece"], "top_ece": report["top_ece"]}
    return row


def run(*, seeds: list[int]) -> dict[str, Any]:
    """Every P3 setting (digits; the 10k CIFAR slice where the shared data is) on ``seeds``, and P2 once."""
    start = time.perf_counter()
    datasets = {"digits": load_digits_dataset()}
    if cifar_available():
        cifar = load_cifar10()
        datasets["cifar10k"] = cifar_subset(cifar, 10_000)
    results: dict[str, Any] = {"machine": machine_info(), "seeds": seeds, "settings": {}}
    for data_name, data in datasets.items():
        for setting, (kind, rate) in NOISE_SETTINGS.items():
            runs = []
            for seed in seeds:
                noisy = inject_noise(data.labels, rate=rate, kind=kind, n_classes=data.n_classes,
                                     random_state=1000 + seed)[0]
                runs.append(measure(data.features, noisy, data.labels, seed=seed))
            results["settings"][f"P3 {data_name} {setting}"] = runs
            print(f"P3 {data_name} {setting}: {_summary(runs)}", flush=True)
    if cifar_available():
        label_sets = cifar10n_labels(cifar)
        for name in ("aggre", "random1", "worse"):
            runs = [measure(cifar.features, label_sets[name], label_sets["clean"], seed=0)]
            results["settings"][f"P2 {name}"] = runs
            print(f"P2 {name}: {_summary(runs)}", flush=True)
    results["wall_seconds"] = time.perf_counter() - start
    return results


def _mean(runs: list[dict[str, Any]], key: str, name: str | None = None) -> float | None:
    values = [(run["counts"][key] if name is None else run[key][name]) for run in runs]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _summary(runs: list[dict[str, Any]]) -> str:
    return f"true {_mean_errors(runs):.0f}, " + ", ".join(f"{c} {_fmt(_mean(runs, c))}" for c in COUNTS)


def _mean_errors(runs: list[dict[str, Any]]) -> float:
    return float(np.mean([run["n_errors"] for run in runs]))


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_markdown(results: dict[str, Any], path: Path) -> None:
    lines = ["# Error counts without ground truth", "",
             f"`python -m benchmarks.error_count --seeds {len(results['seeds'])}`; "
             f"commit {(results['machine']['git']['commit'] or '?')[:7]}; {results['wall_seconds'] / 60:.1f} min. "
             "Counts are means over seeds (P2: one fit). After each count, the top-10% ECE of the scores shifted "
             "to sum to it (the sum's own column: the scores as they are). A count of '-' found too few scores "
             "in the tail on every seed.", "",
             "| setting | seeds | errors | sum of scores | confident joint | counterfactual | "
             "top-10% ECE: sum / CJ / counterfactual |", "|---|---|---|---|---|---|---|"]
    for name, runs in results["settings"].items():
        lines.append(f"| {name} | {len(runs)} | {_mean_errors(runs):.0f} | "
                     + " | ".join(_fmt(_mean(runs, c)) for c in COUNTS) + " | "
                     + " / ".join(_fmt(_mean(runs, c, "top_ece"), 3) for c in COUNTS) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per P3 setting (default 3)")
    args = parser.parse_args(argv)
    results = run(seeds=list(range(args.seeds)))
    write_json(RESULTS / "error_count.json", results)
    write_markdown(results, RESULTS / "error_count.md")
    print(f"wrote {RESULTS / 'error_count.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
