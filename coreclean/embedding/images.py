"""How is any image file turned into an 8-bit RGB picture, or a clear reason why not?

:func:`load_rgb` accepts what real datasets contain: grayscale, palette, RGBA/LA (composited on
white), CMYK, 16-bit and 32-bit integer or float images, EXIF-rotated photos. Corrupt, truncated,
zero-byte and non-image files raise :class:`UnreadableImageError` carrying a one-line reason,
which the embedding pipeline records per sample and moves on.

Size limit: an image above :data:`MAX_PIXELS` (67 megapixels, 8192 x 8192) is not decoded at full
size. A JPEG is decoded reduced (``Image.draft``, down to 1/8 per side) when that brings it under
the limit; anything else above it is refused with a reason naming its size, checked from the
header before any pixel is decoded. Pillow's own decompression-bomb check is replaced by this one.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from coreclean.exceptions import ManifestError

__all__ = ["MAX_PIXELS", "UnreadableImageError", "load_rgb"]

MAX_PIXELS = 8192 * 8192
"""The most pixels (width x height) an image is decoded at; see the module docstring."""


class UnreadableImageError(ManifestError):
    """A file cannot be decoded as an image; ``reason`` says why in a few words."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def load_rgb(path: str | os.PathLike, *, draft_size: int | None = None) -> Image.Image:
    """Decode ``path`` fully into an RGB ``PIL.Image`` (mode ``"RGB"``, 8 bits per channel).

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    draft_size : int, optional
        For JPEGs, let the decoder downscale by a power of two (``Image.draft``) as long as both
        sides stay at least this many pixels. Much faster for large photos; no effect on small ones.

    Returns
    -------
    PIL.Image.Image
        A loaded RGB image, EXIF orientation applied.

    Raises
    ------
    UnreadableImageError
        If the file is missing, empty, truncated, corrupt or not an image.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnreadableImageError(path, "empty file (0 bytes)")
        with open(path, "rb") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                if draft_size is not None and image.format == "JPEG":
                    _draft(image, draft_size)
                _check_size(path, image)
                image.load()
                image = ImageOps.exif_transpose(image)
                return _to_rgb(image)
    except UnreadableImageError:
        raise
    except UnidentifiedImageError as err:
        raise UnreadableImageError(path, "not an image file PIL can identify") from err
    except FileNotFoundError as err:
        raise UnreadableImageError(path, "file not found") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as err:
        raise UnreadableImageError(path, f"cannot decode image ({type(err).__name__}: {err})") from err


def _check_size(path: Path, image: Image.Image) -> None:
    """Shrink an over-limit JPEG's decode by draft mode; refuse any image still above :data:`MAX_PIXELS`."""
    width, height = image.size
    if width * height > MAX_PIXELS and image.format == "JPEG":
        factor = 2
        while factor < 8 and (width // factor) * (height // factor) > MAX_PIXELS:
            factor *= 2
        image.draft("RGB", (width // factor, height // factor))
    if image.size[0] * image.size[1] > MAX_PIXELS:
        raise UnreadableImageError(
            path, f"image is {width} x {height} = {width * height:,} pixels, above the limit of {MAX_PIXELS:,} "
                  "(coreclean.embedding.images.MAX_PIXELS); downscale it"
        )


def _draft(image: Image.Image, min_side: int) -> None:
    width, height = image.size
    scale = min(width, height) / max(min_side, 1)
    if scale >= 2:
        factor = 2 ** min(3, int(np.log2(scale)))
        image.draft("RGB", (width // factor, height // factor))


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image))).convert("RGB")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Map a 16/32-bit integer or float grayscale array onto 0..255."""
    values = array.astype(np.float64)
    if array.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        top = 1.0 if finite.size == 0 or finite.max() <= 1.0 else 255.0 if finite.max() <= 255 else 65535.0
    else:
        top = 255.0 if values.max(initial=0) <= 255 else 65535.0
    return np.clip(np.nan_to_num(values) * (255.0 / top), 0, 255).round().astype(np.uint8)
