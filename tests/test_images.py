"""Tests for coreclean.embedding.images: every pixel format becomes 8-bit RGB; broken files raise a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coreclean.embedding.images import UnreadableImageError, load_rgb


def _save(path: Path, image: Image.Image, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize("mode", ["L", "1", "RGBA", "LA", "P", "CMYK", "YCbCr"])
def test_common_modes_become_rgb(tmp_path: Path, rng: np.random.Generator, mode: str) -> None:
    image = Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).convert(mode)
    suffix = ".jpg" if mode in ("CMYK", "YCbCr") else ".png"
    loaded = load_rgb(_save(tmp_path / f"x{suffix}", image))
    assert loaded.mode == "RGB" and loaded.size == (7, 9)


def test_transparent_pixels_composite_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert np.asarray(load_rgb(_save(tmp_path / "t.png", image))).min() == 255


def test_palette_with_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0] * 256)
    loaded = load_rgb(_save(tmp_path / "p.png", image, transparency=0))
    assert loaded.mode == "RGB"


@pytest.mark.parametrize(("mode", "dtype", "top"), [("I;16", np.uint16, 65535), ("I", np.int32, 65535), ("F", np.float32, 1.0)])
def test_high_bit_depth_is_scaled_not_clipped(tmp_path: Path, mode: str, dtype, top: float) -> None:
    array = (np.linspace(0, 1, 64).reshape(8, 8) * top).astype(dtype)
    image = Image.fromarray(array)
    assert image.mode == mode
    path = tmp_path / ("x.png" if mode == "I;16" else "x.tif")
    loaded = np.asarray(load_rgb(_save(path, image)))
    assert loaded.shape == (8, 8, 3)
    assert loaded[0, 0, 0] == 0 and loaded[-1, -1, 0] == 255
    assert 100 < loaded[4, 0, 0] < 160  # mid-grey stays mid-grey


def test_large_jpeg_draft_keeps_the_requested_size(tmp_path: Path) -> None:
    path = _save(tmp_path / "big.jpg", Image.new("RGB", (800, 600), (200, 10, 10)))
    assert load_rgb(path, draft_size=150).size == (200, 150)
    assert load_rgb(path).size == (800, 600)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not an image"),
        (None, "cannot decode"),  # truncated JPEG
    ],
)
def test_broken_files_raise_with_a_reason(tmp_path: Path, content: bytes | None, match: str) -> None:
    path = tmp_path / "bad.jpg"
    if content is None:
        good = _save(tmp_path / "good.jpg", Image.new("RGB", (64, 64), (1, 2, 3)))
        content = good.read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match=match) as info:
        load_rgb(path)
    assert info.value.path == str(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImageError, match="not found"):
        load_rgb(tmp_path / "nope.png")
