"""Where do images that arrive as bytes, with no file of their own, live on disk?

Some datasets (a Hugging Face ``datasets.Image`` column, for one) hold each image as encoded bytes.
An :class:`ImageStore` keeps them content-addressed beside the embedding cache::

    CACHE/images/<sha256[:2]>/<sha256>.<ext>

so every later step (embedding, remote workers, the review page, thumbnails, exports) reads them
like any other image file. The same bytes are one file however many samples share them, written
once, atomically (a temporary name, then a rename), and never changed afterwards. New files are
flushed to disk together (:func:`coreclean._internal.atomic.fsync_paths`) every
:data:`FLUSH_EVERY` files and when the store is closed, not one by one: that is ~100x faster for
small images. A file cut short by a power failure before its flush has the wrong size and is
written again the next time its bytes come by. The extension comes from the bytes' leading
signature (``.bin`` when they are no known image format; decoding then fails and is reported like
any broken file).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import TracebackType

from coreclean._internal.atomic import atomic_open, fsync_paths

__all__ = ["FLUSH_EVERY", "IMAGE_STORE_FOLDER", "ImageStore", "image_suffix"]

IMAGE_STORE_FOLDER = "images"
"""The image store's folder name inside a cache folder."""

FLUSH_EVERY = 4096
"""New files are flushed to disk at least this often (and when the store is closed)."""

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


def image_suffix(data: bytes) -> str:
    """The file extension of encoded image ``data``, from its leading bytes; ``.bin`` if no known format."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for signature, suffix in _SIGNATURES:
        if data.startswith(signature):
            return suffix
    return ".bin"


class ImageStore:
    """The content-addressed image folder of the cache ``cache_dir``; use it in a ``with`` block.

    Leaving the block (normally or by an exception) flushes the files written in it.
    """

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.root = Path(cache_dir) / IMAGE_STORE_FOLDER
        self.n_written = 0
        self._unflushed: list[Path] = []

    def put(self, data: bytes) -> Path:
        """Keep ``data`` as ``<root>/<sha256[:2]>/<sha256><ext>`` and return that path.

        A file already there with the right size is left as it is (its name is its content).

        Raises
        ------
        OSError
            If the store cannot be written.
        """
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / sha[:2] / f"{sha}{image_suffix(data)}"
        try:
            if path.stat().st_size == len(data):
                return path
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, durable=False) as handle:
            handle.write(data)
        self.n_written += 1
        self._unflushed.append(path)
        if len(self._unflushed) >= FLUSH_EVERY:
            self.flush()
        return path

    def flush(self) -> None:
        """Flush the files written since the last flush, and their folders, to disk."""
        if self._unflushed:
            fsync_paths(self._unflushed)
            self._unflushed.clear()

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.flush()
