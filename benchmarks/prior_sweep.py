"""How strict should the noise prior's disagreement counts be? The sweep behind ``STRICT_QUANTILE``, on P3 only.

For each P3 setting (digits and the 10k CIFAR-10 subset; 10 % / 20 % uniform and 10 % pair flips;
seeds 0-2, the noise drawn as in P3) one :class:`coreclean.LabelIssueRanker` fit gives the pooled
probabilities, and the default's posterior is scored with the noise structure estimated at each
quantile, against two references: the plain confident joint (the earlier default) and no prior at
all (the ``pooled_confidence`` ablation). CIFAR-10N (P2) is never used to choose.

    python -m benchmarks.prior_sweep        # writes benchmarks/results/prior_sweep.json and .md
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_info, write_json
from benchmarks.data import Backbone, cifar_available, load_cifar10, load_digits_dataset
from benchmarks.p3 import NOISE_SETTINGS, cifar_subset
from coreclean.scoring.confident_joint import confident_joint, true_label_posterior
from coreclean._internal.threads import limit_threads
from coreclean.scoring.ranker import LabelIssueRanker
from coreclean.evaluation.ranking_metrics import ranking_report
from coreclean.simulate.noise import inject_noise
from coreclean.scoring.noise_prior import estimate_noise_structure
from coreclean.scoring.methods import pooled_probs
from coreclean.scoring.signals import self_confidence_score

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("auroc", "precision_at_half_errors", "average_precision")


def _variants(probs: np.ndarray, labels: np.ndarray, quantiles: list[float]) -> dict[str, np.ndarray]:
    scores = {"no prior": self_confidence_score(probs, labels),
              "confident joint": self_confidence_score(
                  true_label_posterior(probs, labels, confident_joint(probs, labels)), labels)}
    for quantile in quantiles:
        joint = estimate_noise_structure(probs, labels, quantile=quantile).joint
        scores[f"quantile {quantile:g}"] = self_confidence_score(true_label_posterior(probs, labels, joint), labels)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantiles", type=float, nargs="+", default=[0.5, 0.75, 0.9, 0.95])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "prior_sweep.json")
    args = parser.parse_args(argv)
    datasets = [load_digits_dataset()]
    if cifar_available():
        datasets.append(cifar_subset(load_cifar10(Backbone()), 10_000))
    results: dict[str, Any] = {"benchmark": "prior_sweep", "command": "python -m benchmarks.prior_sweep",
                               "quantiles": args.quantiles, "seeds": list(range(args.seeds)),
                               "machine": machine_info(), "settings": {}}
    for dataset in datasets:
        for setting, (kind, rate) in NOISE_SETTINGS.items():
            per_variant: dict[str, list[dict[str, float]]] = {}
            for seed in range(args.seeds):
                noisy = inject_noise(dataset.labels, rate=rate, kind=kind, n_classes=dataset.n_classes,
                                     random_state=1000 + seed)[0]
                with limit_threads(args.threads):
                    ranker = LabelIssueRanker(random_state=seed).fit(dataset.features, noisy)
                    probs = pooled_probs(ranker.signals_)
                for name, scores in _variants(probs, noisy, args.quantiles).items():
                    report = ranking_report(scores, noisy != dataset.labels, k=1000)
                    per_variant.setdefault(name, []).append({m: float(report[m]) for m in METRICS})
            results["settings"][f"{dataset.name} {setting}"] = {
                name: {m: float(np.mean([run[m] for run in runs])) for m in METRICS} for name, runs in per_variant.items()}
            print(f"{dataset.name} {setting}: " + ", ".join(
                f"{name} {values['precision_at_half_errors']:.3f}" for name, values in results["settings"][f"{dataset.name} {setting}"].items()))
    write_json(args.out, results)
    lines = ["# Noise-prior strictness sweep (P3 only)", "", f"`{results['command']}`; mean over seeds {results['seeds']}; "
             "AUROC / precision at |errors|/2 of the default's posterior with each noise estimate.", "",
             "| setting | " + " | ".join(results["settings"][next(iter(results["settings"]))]) + " |",
             "|---|" + "---|" * len(results["settings"][next(iter(results["settings"]))])]
    for setting, variants in results["settings"].items():
        lines.append(f"| {setting} | " + " | ".join(f"{v['auroc']:.4f} / {v['precision_at_half_errors']:.3f}"
                                                     for v in variants.values()) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
