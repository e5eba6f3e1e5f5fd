"""Which vectors has an embedding run committed so far, and where in which chunk file?

A run commits its finished vectors in chunk files (``embeddings/<key>/chunks/chunk-*.npz``: sha256,
features, and the files that failed with their reasons), each written atomically. A killed run
leaves only whole chunks; the next one rebuilds the index from them and computes just the rest.
Sets of one cache made with the same settings read each other's chunks. A chunk that cannot be
read back is deleted (this set's) or ignored (another set's) and its samples are computed again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coreclean._internal.atomic import atomic_open, atomic_write_text
from coreclean.exceptions import CacheError, CacheMismatchError

__all__ = ["ChunkStore", "DamagedChunkError", "shared_chunk_dirs"]

logger = logging.getLogger(__name__)

_CHUNK_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def shared_chunk_dirs(set_dir: Path, settings: dict[str, Any], *, root: Path | None = None) -> list[Path]:
    """Chunk folders of the other sets in the cache made with the same settings (any dataset).

    The cache's embedding sets are the folders of ``root`` (default: ``set_dir``'s parent), and the
    views kept inside test-time-augmented sets (``<set>/views/<view>``) count as sets too.
    """
    wanted = {k: v for k, v in json.loads(json.dumps(settings)).items() if k != "dataset"}
    root = set_dir.parent if root is None else root
    found = []
    for other in sorted([*root.glob("*/settings.json"), *root.glob("*/views/*/settings.json")]):
        if other.parent == set_dir:
            continue
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stored = json.loads(other.read_text(encoding="utf-8"))
            if {k: v for k, v in stored.items() if k != "dataset"} == wanted:
                found.append(other.parent / "chunks")
    return found


class DamagedChunkError(CacheError):
    """A committed chunk cannot be read back (``chunk`` is its number in ``store``, which can drop it)."""

    def __init__(self, message: str, chunk: int, store: ChunkStore) -> None:
        super().__init__(message)
        self.chunk = chunk
        self.store = store


class ChunkStore:
    """The committed chunks of one embedding set: which content hashes are done or failed.

    ``done`` maps sha256 -> (chunk number, row); ``failed`` maps sha256 -> reason. Both are rebuilt
    from the chunk files on construction (this set's, then those of ``shared`` folders: other sets
    with the same settings), so whatever a killed run committed is reused. A chunk of this set that
    cannot be read is deleted, so its samples are computed again.
    """

    def __init__(self, set_dir: Path, settings: dict[str, Any], *, shared: Sequence[Path] = ()) -> None:
        self.set_dir = set_dir
        self.chunk_dir = set_dir / "chunks"
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        settings_path = set_dir / "settings.json"
        try:
            stored = json.loads(settings_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None  # missing or damaged: the key's digest already pins the settings, so (re)write them
        if stored is None:
            atomic_write_text(settings_path, json.dumps(settings, indent=2, sort_keys=True))
        elif stored != json.loads(json.dumps(settings)):
            raise CacheMismatchError(
                f"{set_dir} was built with other settings ({stored}); delete that folder to rebuild it."
            )
        self.chunk_files: list[Path | None] = []
        self.done: dict[str, tuple[int, int]] = {}
        self.failed: dict[str, str] = {}
        self._rebuild_index(shared)

    def _rebuild_index(self, shared: Sequence[Path]) -> None:
        for stale in self.chunk_dir.glob(".chunk-*.tmp-*"):
            if not _pid_alive(stale.name.rsplit("-", 1)[-1]):
                with contextlib.suppress(OSError):
                    stale.unlink()
        paths = sorted(self.chunk_dir.glob("chunk-*.npz"))
        for folder in shared:
            paths.extend(sorted(folder.glob("chunk-*.npz")))
        for path in paths:
            try:
                with np.load(path, allow_pickle=False) as data:
                    shas = data["sha256"].tolist()
                    failed = list(zip(data["failed_sha256"].tolist(), data["failed_reason"].tolist()))
            except OSError as err:  # unreadable now (permissions, too many open files): not damaged, keep it
                logger.warning("cannot read chunk %s (%s); its samples are computed again", path, err)
                continue
            except _CHUNK_ERRORS as err:
                self._discard(path, err)
                continue
            self._register(path, shas, failed)
        logger.debug("%s: %d embedded, %d failed from %d chunk(s)", self.set_dir.name, len(self.done),
                     len(self.failed), len(self.chunk_files))

    def _discard(self, path: Path, err: BaseException) -> None:
        if path.parent == self.chunk_dir:
            with contextlib.suppress(OSError):
                path.unlink()
            logger.warning("removed damaged chunk %s (%s); its samples are computed again", path, err)
        else:
            logger.warning("ignoring damaged chunk %s of another set (%s)", path, err)

    def drop(self, chunk: int, err: BaseException) -> None:
        """Forget chunk number ``chunk`` (deleting its file when it is this set's): its samples are to do again."""
        path = self.chunk_files[chunk]
        if path is not None:
            self._discard(path, err)
        self.chunk_files[chunk] = None
        self.done = {sha: where for sha, where in self.done.items() if where[0] != chunk}

    def commit(self, shas: Sequence[str], features: np.ndarray, failed: Sequence[tuple[str, str]] = ()) -> None:
        """Write one chunk durably (temp file, fsync, rename), then add it to the index."""
        if not len(shas) and not failed:
            return
        path = self.chunk_dir / f"chunk-{time.time_ns():020d}-{os.getpid()}.npz"
        features = np.ascontiguousarray(features, dtype=np.float32)
        if not len(shas):
            features = features.reshape(0, 0)
        with atomic_open(path) as handle:
            np.savez(
                handle,
                sha256=np.asarray(list(shas), dtype="U64"),
                features=features,
                failed_sha256=np.asarray([s for s, _ in failed], dtype="U64"),
                failed_reason=np.asarray([r for _, r in failed], dtype=str),
            )
        self._register(path, shas, failed)

    def _register(self, path: Path, shas: Sequence[str], failed: Iterable[tuple[str, str]]) -> None:
        """Add a committed chunk to the index: each sha's (chunk, row), and each failure's reason."""
        number = len(self.chunk_files)
        self.chunk_files.append(path)
        for row, sha in enumerate(shas):
            self.done.setdefault(sha, (number, row))
        for sha, reason in failed:
            self.failed.setdefault(sha, reason)

    def fill(self, out: np.ndarray, shas: Sequence[str]) -> None:
        """Write the stored vector of each of ``shas`` into the rows of ``out``, one chunk at a time.

        Raises
        ------
        DamagedChunkError
            A chunk holding some of them is unreadable, short or holds non-finite numbers.
        """
        where = np.array([self.done[s] for s in shas], dtype=np.int64).reshape(-1, 2)
        order = np.argsort(where[:, 0], kind="stable")
        chunk_ids, starts = np.unique(where[order, 0], return_index=True)
        bounds = [*starts[1:], len(order)]
        for chunk_id, start, stop in zip(chunk_ids, starts, bounds):
            positions = np.sort(order[start:stop])
            path = self.chunk_files[chunk_id]
            try:
                with np.load(path, allow_pickle=False) as data:
                    block = data["features"][where[positions, 1]]
            except (*_CHUNK_ERRORS, IndexError, TypeError) as err:
                raise DamagedChunkError(f"chunk {path} is damaged ({err})", int(chunk_id), self) from err
            if block.shape[1:] != out.shape[1:] or not np.isfinite(block).all():
                raise DamagedChunkError(f"chunk {path} is damaged (shape {block.shape} or non-finite values)",
                                        int(chunk_id), self)
            out[positions] = block

    def dim(self, sha: str) -> int:
        """The length of the stored vector of ``sha`` (read from its chunk's header).

        Raises
        ------
        DamagedChunkError
            If that chunk cannot be read.
        """
        chunk = self.done[sha][0]
        path = self.chunk_files[chunk]
        try:
            with np.load(path, allow_pickle=False) as data:
                return int(data["features"].shape[1])
        except (*_CHUNK_ERRORS, IndexError) as err:
            raise DamagedChunkError(f"chunk {path} is damaged ({err})", chunk, self) from err


def _pid_alive(text: str) -> bool:
    try:
        os.kill(int(text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
