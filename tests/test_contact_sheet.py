"""The batch's contact sheet: every image in its own cell, captions, and fast enough for every `session next`."""

import time

import numpy as np
import pandas as pd
from PIL import Image

from coreclean.diagnostics.plots import contact_sheet


def _batch(tmp_path, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n):
        path = tmp_path / f"img-{k}.png"
        Image.new("RGB", (32, 32), tuple(int(c) for c in rng.integers(0, 256, 3))).save(path)
        rows.append({"path": str(path), "label": "cat", "suggested_label": "dog" if k % 2 else "cat",
                     "suggested_prob": 0.8, "position": k})
    return pd.DataFrame(rows)


def test_each_image_fills_its_own_cell_enlarged_and_an_unreadable_one_is_marked(tmp_path):
    batch = _batch(tmp_path, 10)
    batch.loc[3, "path"] = str(tmp_path / "missing.jpg")
    sheet = Image.open(contact_sheet(batch, tmp_path / "sheet.png", columns=4, thumb_size=96)).convert("RGB")
    cell_width = sheet.width // 4
    assert sheet.width == 4 * cell_width and sheet.height % 3 == 0  # 10 images in 3 rows of 4
    cell_height = sheet.height // 3
    for k in (0, 1, 9):
        colour = Image.open(batch.loc[k, "path"]).getpixel((0, 0))
        left, top = (k % 4) * cell_width, (k // 4) * cell_height
        # a 32-pixel image is shown at 96 pixels: its colour fills the centre of its cell
        centre = np.asarray(sheet.crop((left + 10, top + 10, left + 86, top + 86))).reshape(-1, 3)
        assert (centre == colour).all()
    left, top = 3 * cell_width, 0
    unreadable = np.asarray(sheet.crop((left + 10, top + 10, left + 86, top + 86))).reshape(-1, 3)
    assert (unreadable == 255).all(axis=1).any() and (unreadable < 255).any()  # blank, with its word


def test_a_batch_of_150_is_drawn_in_well_under_the_seconds_a_matplotlib_grid_took(tmp_path):
    batch = _batch(tmp_path, 150)
    start = time.perf_counter()
    contact_sheet(batch, tmp_path / "sheet.png")
    # a matplotlib grid of 150 axes took 12.9 s here (most of a 13.8 s `session next`); PIL takes ~0.3 s
    assert time.perf_counter() - start < 3.0
    assert Image.open(tmp_path / "sheet.png").size[1] > 19 * 96  # 19 rows of 8


def test_an_empty_batch_still_writes_a_sheet(tmp_path):
    path = contact_sheet(pd.DataFrame(columns=["path", "label"]), tmp_path / "empty.png")
    assert Image.open(path).size[0] > 0
