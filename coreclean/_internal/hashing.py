"""Content hashes: which bytes is this file, whatever its name?

Embeddings are keyed by the sha256 of a file's bytes, so a renamed file keeps its vector and an
edited one gets a new one. :func:`hash_files` remembers (path, size, mtime) -> sha256 in a small
CSV so that a re-run over a million unchanged files only calls ``stat``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coreclean._internal.atomic import atomic_write_text
from coreclean._internal.threads import usable_cores
from coreclean._internal.validation import is_utf8

__all__ = ["sha256_file", "sha256_file_once", "sha256_text", "hash_files"]

logger = logging.getLogger(__name__)

_BLOCK_SIZE = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 of the bytes of ``path`` (read in 1 MiB blocks).

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


_ONCE: dict[tuple[int, int, int, int], str] = {}


def sha256_file_once(path: str | os.PathLike) -> str:
    """:func:`sha256_file`, read once per process while the file keeps its device, inode, size and mtime.

    For a file several stages of one command name by content (a weights file: the embed request,
    then the loaded model), so a 45 MB file is not read twice.

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    stat = os.stat(path)
    stamp = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if stamp not in _ONCE:
        _ONCE[stamp] = sha256_file(path)
    return _ONCE[stamp]


def sha256_text(text: str) -> str:
    """Return the hex sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_files(
    paths: Sequence[Path], *, memo_path: Path | None = None, n_threads: int | None = None
) -> list[str | BaseException]:
    """Return the sha256 of each of ``paths``, or the error that stopped it being read.

    Parameters
    ----------
    paths : sequence of Path
        Absolute file paths.
    memo_path : Path, optional
        A CSV remembering ``path, size, mtime_ns, sha256`` from earlier calls; a file whose size and
        modification time are unchanged is not read again. It is rewritten atomically at the end,
        keeping the rows of paths not asked for this time (other datasets in the same cache).
    n_threads : int, optional
        Files are hashed in this many threads (hashlib releases the GIL); by default two per usable
        core, at most 8 (reading files waits on the disk as much as it computes).

    Returns
    -------
    list
        One entry per path, in order: a hex digest, or the ``OSError`` raised while reading it.
    """
    if n_threads is None:
        n_threads = min(8, 2 * usable_cores())
    memo = _read_memo(memo_path) if memo_path is not None else {}
    results: list[str | BaseException] = [""] * len(paths)
    stats: list[tuple[int, int] | None] = [None] * len(paths)
    to_hash: list[int] = []
    for i, path in enumerate(paths):
        try:
            st = os.stat(path)
        except OSError as err:
            results[i] = err
            continue
        stats[i] = (st.st_size, st.st_mtime_ns)
        cached = memo.get(str(path))
        if cached is not None and cached[:2] == stats[i]:
            results[i] = cached[2]
        else:
            to_hash.append(i)

    def _one(i: int) -> str | BaseException:
        try:
            return sha256_file(paths[i])
        except OSError as err:
            return err

    if to_hash:
        logger.debug("hashing %d of %d files", len(to_hash), len(paths))
        with ThreadPoolExecutor(max_workers=max(1, n_threads)) as pool:
            for i, result in zip(to_hash, pool.map(_one, to_hash, chunksize=64)):
                results[i] = result
    if memo_path is not None and to_hash:
        for p, st, r in zip(paths, stats, results):
            if st is not None and isinstance(r, str):
                memo[str(p)] = (st[0], st[1], r)
        _write_memo(memo_path, ((p, *entry) for p, entry in memo.items()))  # other datasets' rows stay too
    return results


def _read_memo(memo_path: Path) -> dict[str, tuple[int, int, str]]:
    try:
        with open(memo_path, newline="", encoding="utf-8") as handle:
            return {row[0]: (int(row[1]), int(row[2]), row[3]) for row in csv.reader(handle) if len(row) == 4}
    except (OSError, ValueError):
        return {}  # a memo is only an optimisation: unreadable means re-hash


def _write_memo(memo_path: Path, rows: Iterable[tuple[str, int, int, str]]) -> None:
    """Write the memo; a path that is not valid UTF-8 (a raw byte file name) is left out, never fatal."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(row for row in rows if is_utf8(row[0]))
    atomic_write_text(memo_path, buffer.getvalue())
