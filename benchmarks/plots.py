"""Recall-vs-reviewed and reliability plots of the benchmark results (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_STYLE = {"coreclean": dict(color="C3", lw=2.4), "pooled_confidence": dict(color="C8"), "coreclean recalibrated": dict(color="C9"), "random": dict(color="0.5", ls="--"),
          "self_confidence": dict(color="C0"), "class_leverage": dict(color="C2"),
          "normalized_margin": dict(color="C1"), "knn_disagreement": dict(color="C4"),
          "in_sample_loss": dict(color="C5"), "local_sensitivity": dict(color="C6")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_p1(result: dict[str, Any], path: Path) -> Path:
    """Errors found vs reviewed per ranker (mean over seeds, ±sd band), with DataHeroes' published points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, entry in result["rankers"].items():
        x = np.r_[0, entry["reviewed"]]
        y = np.r_[0, entry["found"]]
        sd = np.r_[0, entry["found_sd"]]
        ax.plot(x, y, marker="o", ms=3, label=f"{name} (n={len(entry['per_seed'])})", **_STYLE.get(name, {}))
        ax.fill_between(x, y - sd, y + sd, alpha=0.15, color=_STYLE.get(name, {}).get("color"))
    dh = result["dataheroes"]
    ax.plot(dh["reviewed"], dh["coreset"], "k^", label="DataHeroes coreset (published)")
    ax.plot(dh["reviewed"], dh["random"], "kv", mfc="none", label="DataHeroes random (published)")
    ax.axhline(result["n_errors"], color="0.8", lw=0.8)
    ax.set_xlabel("samples reviewed")
    ax.set_ylabel(f"label errors found (of {result['n_errors']})")
    pairs = ", ".join(f"{p['true']}→{p['labelled']}" for p in result["pairs"])
    ax.set_title(f"P1 CIFAR-10 confusable pairs ({pairs})", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_recall_panels(panels: list[tuple[str, dict[str, Any]]], fractions: list[float], path: Path, *,
                       title: str) -> Path:
    """One panel per (dataset, noise) entry: recall vs fraction of the data reviewed, per ranker."""
    plt = _pyplot()
    n = len(panels)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    x = 100 * np.asarray(fractions)
    for ax, (label, summary) in zip(axes.ravel(), panels):
        for name, entry in summary["rankers"].items():
            ax.plot(x, entry["recall_curve"], label=name, **_STYLE.get(name, {}))
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("% of data reviewed")
        ax.set_ylabel("recall of label errors")
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(panels: list[tuple[str, dict[str, Any]]], path: Path, *, title: str) -> Path:
    """One panel per (dataset, noise) entry: observed error rate vs claimed P(label wrong), per probability ranker.

    Points are the reliability bins pooled over seeds (:mod:`coreclean.evaluation.calibration`), sized by count.
    """
    plt = _pyplot()
    panels = [(label, summary) for label, summary in panels if summary.get("calibration")]
    n = max(len(panels), 1)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax, (label, summary) in zip(axes.ravel(), panels):
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        for name, entry in summary["calibration"].items():
            bins = entry["bins"]
            keep = [i for i, c in enumerate(bins["counts"]) if c > 0]
            x = [bins["mean_prob"][i] for i in keep]
            y = [bins["error_rate"][i] for i in keep]
            sizes = [8 + 40 * np.log10(1 + bins["counts"][i]) for i in keep]
            style = _STYLE.get(name, {})
            ax.plot(x, y, lw=0.8, color=style.get("color"), alpha=0.7)
            ax.scatter(x, y, s=sizes, color=style.get("color"), label=f"{name} (ECE {entry['ece']['mean']:.3f})")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("claimed P(label wrong)")
        ax.set_ylabel("observed error rate")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
