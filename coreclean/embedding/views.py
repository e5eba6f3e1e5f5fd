"""Which views of an image are embedded, and how are their vectors kept and combined (test-time augmentation)?

With ``tta="flip"`` an image's vector is the mean of the embeddings of its centre crop and of that
crop's mirror image. Each view keeps its own content-keyed chunks, inside the set under
``views/<view>/``, with the settings of a plain set of that view, so chunks are shared both ways:
a flip set reads the vectors an earlier plain embedding committed (and only the mirrors are
computed), and a later plain embedding reads the flip set's plain view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coreclean.embedding.chunks import ChunkStore, shared_chunk_dirs
from coreclean.exceptions import CorecleanError

if TYPE_CHECKING:  # torch stays out of the CLI's start-up, which reads TTA_CHOICES
    from coreclean.embedding.backbones import Preprocess

__all__ = ["TTA_CHOICES", "ViewStores", "check_tta", "open_view_stores"]

TTA_CHOICES = ("none", "flip")
"""Test-time augmentations ``embed`` offers: none (one view), or flip (the crop and its mirror, averaged)."""


def check_tta(tta: str) -> str:
    """Return ``tta`` if it is one of :data:`TTA_CHOICES`.

    Raises
    ------
    CorecleanError
        Otherwise, naming the choices.
    """
    if tta not in TTA_CHOICES:
        raise CorecleanError(f"unknown test-time augmentation {tta!r}; use one of {', '.join(TTA_CHOICES)}.")
    return tta


class ViewStores:
    """The chunk stores of a flip set's two views, read as one store of averaged vectors.

    A content hash is ``done`` when both views hold its vector, and ``failed`` when either view
    failed it. :meth:`fill` writes the mean of the two views' vectors.
    """

    def __init__(self, views: Sequence[tuple[Preprocess, ChunkStore]]) -> None:
        self.views = list(views)

    @property
    def done(self) -> set[str]:
        """Content hashes every view has a vector for."""
        first, *rest = (set(store.done) for _, store in self.views)
        return first.intersection(*rest)

    @property
    def failed(self) -> dict[str, str]:
        """Content hash -> reason, for those any view failed."""
        merged: dict[str, str] = {}
        for _, store in self.views:
            for sha, reason in store.failed.items():
                merged.setdefault(sha, reason)
        return merged

    def fill(self, out: np.ndarray, shas: Sequence[str]) -> None:
        """Write the mean over the views of each of ``shas``' vectors into the rows of ``out``.

        Raises
        ------
        DamagedChunkError
            A chunk of some view is unreadable (the error names its store, which can drop it).
        """
        out[:] = 0.0
        part = np.empty_like(out)
        for _, store in self.views:
            store.fill(part, shas)
            out += part
        out /= len(self.views)

    def dim(self, sha: str) -> int:
        """The length of ``sha``'s vector (checked equal across the views)."""
        dims = {store.dim(sha) for _, store in self.views}
        if len(dims) != 1:
            raise CorecleanError(f"the views of one image have vectors of different lengths {sorted(dims)}.")
        return dims.pop()


def open_view_stores(set_dir: Path, settings: dict[str, Any], preprocess: Preprocess) -> ViewStores:
    """The plain and mirror views' chunk stores of the flip set ``set_dir`` (created if needed).

    ``settings`` are the flip set's; each view is stored with the settings a plain set of that view
    would have (no ``tta``, the view's transform), so it shares chunks with such sets of the cache.
    """
    views = []
    for name, view in (("plain", preprocess), ("mirror", dataclasses.replace(preprocess, mirror=True))):
        view_settings = {k: v for k, v in settings.items() if k != "tta"}
        view_settings["transform"] = repr(view)
        view_dir = set_dir / "views" / name
        view_dir.mkdir(parents=True, exist_ok=True)
        shared = shared_chunk_dirs(view_dir, view_settings, root=set_dir.parent)
        store = ChunkStore(view_dir, view_settings, shared=shared)
        views.append((view, store))
    return ViewStores(views)
