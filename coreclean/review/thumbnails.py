"""How does the review page get an image it can show? Thumbnails made on the fly, then cached.

A thumbnail is the image decoded with :func:`coreclean.embedding.images.load_rgb` (so every format the
embedding read works here too), shrunk to fit a square of ``size`` pixels and re-encoded as JPEG.
Only re-encoded pixels ever leave the server, never a file's raw bytes.

Thumbnails are keyed by the sha256 of the file's bytes recorded at embedding time. Before making
one, the bytes on disk are hashed and compared with it: a file edited or swapped since it was
embedded is refused rather than shown under a stale score. Made thumbnails are kept in a bounded
in-memory LRU and, when a folder is given, on disk (written atomically), so a restarted server
does not decode every image again.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from coreclean._internal.atomic import atomic_open
from coreclean._internal.hashing import sha256_file, sha256_text
from coreclean.embedding.images import UnreadableImageError, load_rgb

__all__ = ["ThumbnailCache", "ThumbnailError", "THUMBNAIL_SIZES"]

logger = logging.getLogger(__name__)

THUMBNAIL_SIZES = (64, 128, 256, 384, 512)
"""The sizes (longest side, pixels) the server makes; a request for another size gets the next one up."""

_JPEG_QUALITY = 88


class ThumbnailError(Exception):
    """A thumbnail cannot be made; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def snap_size(size: int) -> int:
    """Return the smallest of :data:`THUMBNAIL_SIZES` that is at least ``size`` (or the largest)."""
    for candidate in THUMBNAIL_SIZES:
        if candidate >= size:
            return candidate
    return THUMBNAIL_SIZES[-1]


class ThumbnailCache:
    """Make JPEG thumbnails of image files and keep them.

    Parameters
    ----------
    directory : path or None
        Folder for thumbnails on disk (created when first needed); None keeps them in memory only.
    max_items : int
        Thumbnails kept in memory (least recently used ones go first).
    """

    def __init__(self, directory: str | os.PathLike | None = None, *, max_items: int = 2048) -> None:
        self.directory = None if directory is None else Path(directory)
        self.max_items = max_items
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str | os.PathLike, *, sha256: str = "", size: int = 256) -> bytes:
        """Return the JPEG bytes of ``path``'s thumbnail, at most ``size`` pixels on its longest side.

        Parameters
        ----------
        path : str or os.PathLike
            The image file (already checked by :class:`coreclean.review.security.FileGuard`).
        sha256 : str
            The hex sha256 its bytes had when embedded; the key of the cache. Empty when unknown
            (an embedding set made from user-provided features): the file is then keyed by its
            real path, size and modification time, and its bytes are not checked.
        size : int
            Requested longest side, snapped up to one of :data:`THUMBNAIL_SIZES`.

        Raises
        ------
        ThumbnailError
            409 if the file's bytes no longer match ``sha256``, 422 if it cannot be decoded,
            404 if it cannot be read.
        """
        size = snap_size(size)
        if sha256:
            key = f"{sha256}-{size}"
        else:
            try:
                stat = os.stat(path)
            except OSError as err:
                raise ThumbnailError(404, f"cannot read the image file ({type(err).__name__})") from err
            key = f"{sha256_text(f'{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}')}-{size}"
        with self._lock:
            data = self._memory.get(key)
            if data is not None:
                self._memory.move_to_end(key)
                return data
        data = self._read_disk(key)
        if data is None:
            data = self._make(Path(path), sha256, size)
            self._write_disk(key, data)
        with self._lock:
            self._memory[key] = data
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_items:
                self._memory.popitem(last=False)
        return data

    def _make(self, path: Path, sha256: str, size: int) -> bytes:
        try:
            actual = sha256_file(path)
        except OSError as err:
            raise ThumbnailError(404, f"cannot read the image file ({type(err).__name__})") from err
        if sha256 and actual != sha256:
            raise ThumbnailError(409, "the image file changed since it was embedded; re-run `coreclean embed`")
        try:
            image = load_rgb(path, draft_size=size)
        except UnreadableImageError as err:
            raise ThumbnailError(422, f"cannot decode the image: {err.reason}") from err
        if max(image.size) > size:
            image.thumbnail((size, size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
        return buffer.getvalue()

    def _disk_path(self, key: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / key[:2] / f"{key}.jpg"

    def _read_disk(self, key: str) -> bytes | None:
        path = self._disk_path(key)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def _write_disk(self, key: str, data: bytes) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(path) as handle:
                handle.write(data)
        except OSError as err:  # a full or read-only disk costs speed, not the page
            logger.warning("cannot cache thumbnail %s: %s", path, err)
