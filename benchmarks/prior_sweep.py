"""How far should the noise prior trust its structure? The sweep behind ``SYMMETRY_SDS`` (and ``STRICT_QUANTILE``), on P3 only.

For each P3 setting (digits and the 10k CIFAR-10 subset; every noise of :data:`benchmarks.p3.NOISE_SETTINGS`,
the low-noise ones with :data:`benchmarks.p3.LOW_NOISE_SEEDS` seeds, the others with ``--seeds``; noise
drawn as in P3) one :class:`coreclean.LabelIssueRanker` fit gives the signals; the default's posterior
is scored with the noise structure estimated at each (quantile, n_sd), beside every other ranker of
the registry on the same signals. ``n_sd`` is the chance asymmetry discounted before the structure is
trusted (:func:`coreclean.scoring.noise_prior.asymmetry_weight`); ``structured`` is the structured joint
trusted whatever its symmetry (the prior before this rule, up to its ``n/(n+1)`` evidence weight). The
chosen n_sd minimises the summed shortfall of the default's mean AUROC and P@|E|/2 below the best
other ranker of the same setting. CIFAR-10N (P2) is never used to choose.

    python -m benchmarks.prior_sweep        # writes benchmarks/results/prior_sweep_symmetry.json and .md
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info, run_ranker, write_json
from benchmarks.data import Backbone, cifar_available, load_cifar10, load_digits_dataset
from benchmarks.p3 import LOW_NOISE, LOW_NOISE_SEEDS, NOISE_SETTINGS, cifar_subset
from coreclean._internal.threads import limit_threads
from coreclean.evaluation.ranking_metrics import ranking_report
from coreclean.scoring.confident_joint import true_label_posterior
from coreclean.scoring.methods import DEFAULT_METHOD, REGISTRY, pooled_probs
from coreclean.scoring.noise_prior import STRICT_QUANTILE, estimate_noise_structure
from coreclean.scoring.ranker import LabelIssueRanker
from coreclean.scoring.signals import self_confidence_score
from coreclean.simulate.noise import inject_noise

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("auroc", "precision_at_half_errors", "average_precision")
CHOOSE_ON = ("auroc", "precision_at_half_errors")
BASELINES = tuple(name for name in REGISTRY if name not in (DEFAULT_METHOD, "random"))


def _variant_scores(probs: np.ndarray, labels: np.ndarray, quantiles: list[float],
                    n_sds: list[float]) -> dict[str, np.ndarray]:
    scores = {}
    for quantile in quantiles:
        structure = None
        for n_sd in n_sds:
            structure = estimate_noise_structure(probs, labels, quantile=quantile, n_sd=n_sd)
            posterior = true_label_posterior(probs, labels, structure.joint)
            scores[f"q{quantile:g} sd{n_sd:g}"] = self_confidence_score(posterior, labels)
        if structure is not None:
            posterior = true_label_posterior(probs, labels, structure.structured)
            scores[f"q{quantile:g} structured"] = self_confidence_score(posterior, labels)
    return scores


def shortfalls(setting: dict[str, dict[str, float]], variants: list[str]) -> dict[str, float]:
    """Per variant: summed shortfall of its mean AUROC and P@|E|/2 below the best baseline of the setting."""
    best = {m: max(setting[name][m] for name in BASELINES if name in setting) for m in CHOOSE_ON}
    return {v: float(sum(max(0.0, best[m] - setting[v][m]) for m in CHOOSE_ON)) for v in variants}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantiles", type=float, nargs="+", default=[STRICT_QUANTILE])
    parser.add_argument("--n-sds", type=float, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the 10%%/20%% settings")
    parser.add_argument("--datasets", nargs="+", default=["digits", "cifar10"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "prior_sweep_symmetry.json")
    args = parser.parse_args(argv)
    datasets = [load_digits_dataset()] if "digits" in args.datasets else []
    if "cifar10" in args.datasets and cifar_available():
        datasets.append(cifar_subset(load_cifar10(Backbone()), 10_000))
    results: dict[str, Any] = {"benchmark": "prior_sweep",
                               "command": "python -m benchmarks.prior_sweep " + shlex.join(sys.argv[1:] if argv is None else argv),
                               "quantiles": args.quantiles, "n_sds": args.n_sds, "machine": machine_info(),
                               "settings": {}}
    for dataset in datasets:
        for setting, (kind, rate) in NOISE_SETTINGS.items():
            seeds = range(max(args.seeds, LOW_NOISE_SEEDS) if setting in LOW_NOISE else args.seeds)
            per_variant: dict[str, list[dict[str, float]]] = {}
            for seed in seeds:
                noisy = inject_noise(dataset.labels, rate=rate, kind=kind, n_classes=dataset.n_classes,
                                     random_state=1000 + seed)[0]
                is_error = noisy != dataset.labels
                with limit_threads(args.threads):
                    signals = LabelIssueRanker(random_state=seed).fit(dataset.features, noisy).signals_
                    scores = {name: run_ranker(name, signals, np.random.default_rng(seed))[0] for name in BASELINES}
                    scores.update(_variant_scores(pooled_probs(signals), noisy, args.quantiles, args.n_sds))
                for name, score in scores.items():
                    report = ranking_report(score, is_error, k=1000)
                    per_variant.setdefault(name, []).append({m: float(report[m]) for m in METRICS})
            summary = {name: {m: float(np.mean([run[m] for run in runs])) for m in METRICS}
                       for name, runs in per_variant.items()}
            summary["n_seeds"] = len(seeds)
            results["settings"][f"{dataset.name} {setting}"] = summary
            print(f"{dataset.name} {setting}: " + ", ".join(
                f"{name} {v['auroc']:.4f}/{v['precision_at_half_errors']:.3f}" for name, v in summary.items()
                if isinstance(v, dict)), flush=True)
    variants = list(_variant_scores(np.full((2, 2), 0.5), np.array([0, 1]), args.quantiles, args.n_sds))
    totals = {v: 0.0 for v in variants}
    for setting in results["settings"].values():
        for v, short in shortfalls(setting, variants).items():
            totals[v] += short
    results["total_shortfall"] = totals
    results["chosen"] = min(variants, key=lambda v: (round(totals[v], 6), variants.index(v)))
    write_json(args.out, results)
    _write_markdown(results, variants, args.out.with_suffix(".md"))
    print("chosen:", results["chosen"], totals)
    return 0


def _write_markdown(results: dict[str, Any], variants: list[str], path: Path) -> None:
    columns = variants + [b for b in BASELINES]
    lines = ["# Noise-prior trust sweep (P3 only)", "",
             f"`{results['command']}`; mean over seeds; AUROC / P@|E|/2. `qQ sdS`: the default's posterior with "
             "strict-count quantile Q, the structure trusted by its asymmetry beyond S standard deviations of "
             "chance; `qQ structured`: the structure trusted whatever its symmetry. "
             f"Chosen: **{results['chosen']}** (least summed shortfall below the best other ranker).", "",
             "| setting | seeds | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for name, setting in results["settings"].items():
        lines.append(f"| {name} | {setting['n_seeds']} | " + " | ".join(
            f"{setting[c]['auroc']:.4f} / {setting[c]['precision_at_half_errors']:.3f}" for c in columns) + " |")
    lines.append("| summed shortfall | | " + " | ".join(f"{results['total_shortfall'][v]:.4f}" for v in variants)
                 + " |" * len(BASELINES) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
