"""How do the rounds of a session look, and what is in this batch? PNG figures.

The plots are drawn with matplotlib, imported inside each function (never at ``import coreclean``),
on :class:`matplotlib.figure.Figure` with the Agg canvas directly, so no global backend is switched
(safe inside notebooks). The batch's contact sheet is a grid of images, composed with PIL. Every
function writes one PNG and returns its path.
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
    axes[1].plot(reviewed["round"], reviewed["base_rate"].astype(float), "s--", color="tab:gray",
                 label="random review (base rate)")
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
    """A grid of the batch's images, each captioned ``#position: label`` and, where the suggestion differs,
    ``-> suggestion (probability)``.

    The grid is composed with PIL (thumbnails pasted on one canvas, captions drawn with PIL's default
    font): a matplotlib grid of 150 axes took 12.9 s of a 13.8 s ``session next``.

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
    from PIL import Image, ImageDraw, ImageFont

    rows_frame = batch.head(max_images)
    font = ImageFont.load_default(size=max(9, thumb_size // 9))
    line = int(font.getbbox("#0 Ag")[3]) + 2
    pad = 4
    cell_width, cell_height = thumb_size + 2 * pad, thumb_size + 2 * line + 2 * pad
    n_rows = max(1, -(-len(rows_frame) // columns))
    sheet = Image.new("RGB", (columns * cell_width, n_rows * cell_height), "white")
    draw = ImageDraw.Draw(sheet)
    for k, row in enumerate(rows_frame.itertuples(index=False)):
        left, top = (k % columns) * cell_width + pad, (k // columns) * cell_height + pad
        try:
            with Image.open(row.path) as image:
                image = image.convert("RGB")
                image.thumbnail((thumb_size, thumb_size))
                scale = thumb_size / max(image.size)
                if scale > 1:  # small images (CIFAR's 32 px) are enlarged, pixels kept sharp
                    image = image.resize((round(image.width * scale), round(image.height * scale)),
                                         Image.Resampling.NEAREST)
                sheet.paste(image, (left + (thumb_size - image.width) // 2, top + (thumb_size - image.height) // 2))
        except (OSError, ValueError):
            draw.rectangle((left, top, left + thumb_size - 1, top + thumb_size - 1), outline="grey")
            draw.text((left + 4, top + thumb_size // 2 - line // 2), "unreadable", fill="grey", font=font)
        number = getattr(row, "position", k)
        draw.text((left, top + thumb_size + 1), _fit(draw, f"#{number}: {row.label}", font, thumb_size),
                  fill="black", font=font)
        suggestion = getattr(row, "suggested_label", None)
        if suggestion is not None and str(suggestion) != str(row.label):
            caption = f"-> {suggestion}"
            prob = getattr(row, "suggested_prob", None)
            if prob is not None and np.isfinite(prob):
                caption += f" ({prob:.0%})"
            draw.text((left, top + thumb_size + 1 + line), _fit(draw, caption, font, thumb_size),
                      fill=(214, 39, 40), font=font)
    if rows_frame.empty:
        draw.text((pad, pad), "empty batch", fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        sheet.save(handle, format="PNG")
    return path


def _fit(draw, text: str, font, width: int) -> str:
    """``text``, shortened with an ellipsis until it is at most ``width`` pixels wide in ``font``."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
