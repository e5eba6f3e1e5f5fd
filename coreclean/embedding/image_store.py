"""Where do images that arrive as bytes, with no file of their own, live on disk?

Some datasets (a Hugging Face ``datasets.Image`` column, for one) hold each image as encoded bytes.
:func:`store_image_bytes` keeps them content-addressed beside the embedding cache::

    CACHE/images/<sha256[:2]>/<sha256>.<ext>

so every later step (embedding, remote workers, the review page, thumbnails, exports) reads them
like any other image file. The same bytes are one file however many samples share them; a file is
written once, atomically (a temporary name, fsync, rename), and never changed afterwards. The
extension comes from the bytes' leading signature (``.bin`` when they are no known image format;
decoding them then fails and is reported like any broken file).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from coreclean._internal.atomic import atomic_open

__all__ = ["IMAGE_STORE_FOLDER", "image_store_dir", "image_suffix", "store_image_bytes"]

IMAGE_STORE_FOLDER = "images"
"""The image store's folder name inside a cache folder."""

_SIGNATURES = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tiff"),
    (b"MM\x00*", ".tiff"),
    (b"P6", ".ppm"),
    (b"P5", ".pgm"),
)


def image_store_dir(cache_dir: str | os.PathLike) -> Path:
    """The image store of the cache folder ``cache_dir`` (not created here)."""
    return Path(cache_dir) / IMAGE_STORE_FOLDER


def image_suffix(data: bytes) -> str:
    """The file extension of encoded image ``data``, from its leading bytes; ``.bin`` if no known format."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for signature, suffix in _SIGNATURES:
        if data.startswith(signature):
            return suffix
    return ".bin"


def store_image_bytes(store_dir: str | os.PathLike, data: bytes) -> Path:
    """Keep ``data`` as ``store_dir/<sha256[:2]>/<sha256><ext>`` and return that path.

    A file already there is left as it is (its name is its content); otherwise it is written
    atomically, so a killed run never leaves a partial image behind.

    Raises
    ------
    OSError
        If the store cannot be written.
    """
    sha = hashlib.sha256(data).hexdigest()
    path = Path(store_dir) / sha[:2] / f"{sha}{image_suffix(data)}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as handle:
            handle.write(data)
    return path
