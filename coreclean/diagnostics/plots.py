"""How do the rounds of a session look, and what is in this batch? PNG figures, written with matplotlib's Agg canvas.

matplotlib is imported inside each function (never at ``import coreclean``), and figures are drawn
on :class:`matplotlib.figure.Figure` with the Agg canvas directly, so no global backend is switched
(safe inside notebooks). Every function writes one PNG and returns its path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from coreclean._internal.atomic import atomic_open

__all__ = ["plot_rounds", "contact_sheet", "plot_errors_found"]


def _figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - matplotlib is a hard dependency today
        raise ImportError("plots need matplotlib: pip install 'coreclean[plots]'") from err
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        figure.savefig(handle, format="png")
    return path


def plot_rounds(rounds: pd.DataFrame, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Three panels per round: AUROC with its bootstrap interval, hit rate against the base rate, errors found.

    Parameters
    ----------
    rounds : DataFrame
        :meth:`coreclean.CleaningSession.rounds`.
    path : str or os.PathLike
        The PNG to write.
    title : str, optional

    Returns
    -------
    Path
    """
    figure = _figure(12, 3.6)
    axes = figure.subplots(1, 3)
    x = rounds["round"].to_numpy()
    auroc = rounds["auroc"].astype(float).to_numpy()
    if np.isfinite(auroc).any():
        low = rounds["auroc_low"].astype(float).to_numpy()
        high = rounds["auroc_high"].astype(float).to_numpy()
        axes[0].fill_between(x, low, high, alpha=0.25, color="tab:blue", label="95% bootstrap")
        axes[0].plot(x, auroc, "o-", color="tab:blue", label="CV AUROC")
        axes[0].legend(loc="lower right", fontsize=8)
    else:
        axes[0].text(0.5, 0.5, "not evaluated", ha="center", va="center", transform=axes[0].transAxes)
    axes[0].set_title("out-of-sample AUROC (current labels)", fontsize=10)
    reviewed = rounds[rounds["round"] > 0]
    axes[1].plot(reviewed["round"], reviewed["hit_rate"].astype(float), "o-", color="tab:green", label="hit rate")
    base_at_start = rounds["base_rate"].astype(float).shift(1)[rounds["round"] > 0]
    axes[1].plot(reviewed["round"], base_at_start, "s--", color="tab:gray", label="base rate at round start (random)")
    plateau = reviewed[reviewed["plateau"].astype(bool)]
    if len(plateau):
        axes[1].plot(plateau["round"], plateau["hit_rate"].astype(float), "x", color="tab:red", markersize=10,
                     label="plateau")
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].legend(fontsize=8)
    axes[1].set_title("errors found / reviewed", fontsize=10)
    axes[2].bar(x, rounds["n_errors_found"].astype(float), color="tab:orange", alpha=0.6, label="this round")
    axes[2].plot(x, rounds["n_errors_found"].astype(float).cumsum(), "o-", color="tab:red", label="cleaned so far")
    axes[2].legend(fontsize=8)
    axes[2].set_title("errors cleaned", fontsize=10)
    for axis in axes:
        axis.set_xlabel("round")
        axis.set_xticks(x)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return _save(figure, path)


def plot_errors_found(curves: Mapping[str, pd.DataFrame], path: str | os.PathLike, *, total_errors: int | None = None,
                      title: str | None = None) -> Path:
    """Cumulative errors found against samples reviewed, one line per ranking (e.g. coreclean vs random).

    ``curves`` maps a name to a :meth:`CleaningSession.rounds` frame.
    """
    figure = _figure(6, 4)
    axis = figure.subplots()
    for name, rounds in curves.items():
        axis.plot(rounds["reviewed_total"], rounds["errors_found_total"], "o-", label=name)
    if total_errors is not None:
        axis.axhline(total_errors, color="tab:gray", linestyle=":", label=f"all {total_errors} errors")
    axis.set_xlabel("samples reviewed")
    axis.set_ylabel("errors found")
    axis.legend()
    axis.set_title(title or "errors found per review", fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def contact_sheet(batch: pd.DataFrame, path: str | os.PathLike, *, columns: int = 8, thumb_size: int = 96,
                  max_images: int = 200) -> Path:
    """A grid of the batch's images, each captioned with its id's position, label and suggestion.

    Parameters
    ----------
    batch : DataFrame
        Columns ``path, label`` and optionally ``suggested_label, suggested_prob, position``.
    path : str or os.PathLike
        The PNG to write.
    columns, thumb_size, max_images : int
        Grid width, thumbnail size in pixels, and the most images drawn.

    Returns
    -------
    Path
    """
    from PIL import Image

    rows_frame = batch.head(max_images)
    n_images = max(len(rows_frame), 1)
    n_rows = int(np.ceil(n_images / columns))
    scale = thumb_size / 100.0
    figure = _figure(columns * 1.25 * scale + 0.2, n_rows * 1.55 * scale + 0.2)
    for k, row in enumerate(rows_frame.itertuples(index=False)):
        axis = figure.add_subplot(n_rows, columns, k + 1)
        axis.set_axis_off()
        try:
            with Image.open(row.path) as image:
                image = image.convert("RGB")
                image.thumbnail((thumb_size, thumb_size))
                axis.imshow(np.asarray(image), interpolation="nearest")
        except (OSError, ValueError):
            axis.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=7)
        number = getattr(row, "position", k)
        caption = f"#{number} {row.label}"
        suggestion = getattr(row, "suggested_label", None)
        if suggestion is not None and str(suggestion) != str(row.label):
            caption += f"\n-> {suggestion}"
            prob = getattr(row, "suggested_prob", None)
            if prob is not None and np.isfinite(prob):
                caption += f" {prob:.0%}"
        axis.set_title(caption, fontsize=7, color="tab:red" if "->" in caption else "black")
    if batch.empty:
        axis = figure.add_subplot(1, 1, 1)
        axis.set_axis_off()
        axis.text(0.5, 0.5, "empty batch", ha="center", va="center")
    figure.tight_layout(pad=0.3)
    return _save(figure, path)
