"""Can an embedding set's files be trusted, and if not, which command repairs them?

``info.json`` records the cache format, the sha256 of ``samples.csv`` and of every block of
``features.npy``. Readers check ``samples.csv`` whenever they read it and ``features.npy`` once
after each change of the file (``verified.json`` remembers its inode, size and times; the check
costs one sequential read at about 1 GB/s). A mismatch is a :class:`CacheError` whose message
names the ``coreclean embed`` command that rebuilds the set in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import numpy as np

from coreclean._internal.atomic import atomic_write_text
from coreclean._internal.hashing import sha256_text
from coreclean.exceptions import CacheError

__all__ = ["FORMAT_VERSION", "open_features", "block_digests", "file_stamp", "repair_hint"]

FORMAT_VERSION = 2
"""Layout version written to ``info.json``; 1 (no field) had no checksums and one dataset per settings."""


def open_features(set_dir: Path, info: dict[str, Any]) -> np.ndarray:
    """Memory-map ``set_dir/features.npy`` after checking it against ``info``'s block checksums.

    The check reads the whole file once (sha256, about 1 GB/s), then ``verified.json`` remembers the
    file's inode, size and modification/change times, so later calls only ``stat`` it until the
    file changes. A read-only cache is checked on every call.

    Raises
    ------
    CacheError
        Unreadable, wrong shape or dtype, or a block whose checksum differs (rows named).
    """
    path = set_dir / "features.npy"
    try:
        features = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise CacheError(f"cannot read {path} ({err}); {repair_hint(set_dir, info)}.") from err
    expected = (int(info.get("n_samples", -1)), int(info.get("dim", -1)))
    if features.ndim != 2 or features.shape != expected or features.dtype != np.float32:
        raise CacheError(f"{path} holds {features.shape} {features.dtype}, not the {expected} float32 its "
                         f"info.json promises; {repair_hint(set_dir, info)}.")
    try:
        block_rows, recorded = int(info["checksums"]["block_rows"]), list(info["checksums"]["features.npy"])
    except (KeyError, TypeError, ValueError) as err:
        raise CacheError(f"{set_dir / 'info.json'} lacks the checksums of features.npy; "
                         f"{repair_hint(set_dir, info)}.") from err
    stamp = file_stamp(path, info)
    memo = set_dir / "verified.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(memo.read_text(encoding="utf-8")) == stamp:
            return features
    digests = block_digests(features, block_rows)
    bad = [i for i, (got, want) in enumerate(zip(digests, recorded)) if got != want]
    if bad or len(digests) != len(recorded):
        first = bad[0] if bad else min(len(digests), len(recorded))
        raise CacheError(
            f"{path} is damaged: {len(bad) or 1} block(s) of {block_rows} rows do not match their checksum "
            f"(first: rows {first * block_rows}-{(first + 1) * block_rows - 1}); {repair_hint(set_dir, info)}."
        )
    with contextlib.suppress(OSError):
        atomic_write_text(memo, json.dumps(stamp))
    return features


def file_stamp(path: Path, info: dict[str, Any]) -> list[Any]:
    """What identifies this version of ``path`` (inode, size, times) and the checksums it was checked against."""
    st = os.stat(path)
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, info.get("fingerprint"),
            sha256_text(json.dumps(info["checksums"]["features.npy"]))]


def block_digests(features: np.ndarray, block_rows: int) -> list[str]:
    """sha256 of the bytes of each ``block_rows``-row block of a C-ordered 2-D array."""
    return [hashlib.sha256(np.ascontiguousarray(features[start : start + block_rows])).hexdigest()
            for start in range(0, features.shape[0], block_rows)]


def repair_hint(set_dir: Path, info: dict[str, Any] | None = None) -> str:
    """The command that rebuilds an embedding set in place, from its sidecar or its settings file."""
    cache_dir = set_dir.parent.parent
    settings: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError, AttributeError):
        settings = dict(json.loads((set_dir / "settings.json").read_text(encoding="utf-8")))
    source = (info or {}).get("source") or settings.get("dataset")
    if source is None:
        return f"delete {set_dir} and run `coreclean embed` again"
    cache = shlex.quote(str(cache_dir))
    if settings.get("transform") == "user-provided features":
        if source == "<DataFrame>":
            return "call coreclean.embedding.own_features.write_feature_cache again with the same vectors and table"
        return (f"run `coreclean embed --features X.npy --manifest {shlex.quote(str(source))} --cache {cache}` "
                "with the same vectors to rebuild it")
    weights = str(settings.get("weights", "DEFAULT"))
    if weights.startswith("sha256:"):
        weights = str((info or {}).get("weights_source") or "FILE")
    options = f" --backbone {settings['backbone']}" if "backbone" in settings else ""
    options += f" --weights {shlex.quote(weights)}"
    options += f" --image-size {settings['image_size']}" if settings.get("image_size") else ""
    options += f" --precision {settings['precision']}" if "precision" in settings else ""
    return f"run `coreclean embed {_source_arguments(str(source))} --cache {cache}{options}` to repair it"


def _source_arguments(source: str) -> str:
    """The ``embed`` arguments naming ``source``: the path, or for a Hugging Face dataset its ``--hf`` options.

    A Hugging Face source reads ``hf:WHERE?split=S&image=C&label=L[&id=I]``
    (:func:`coreclean.formats.hf_source.hf_source_id`).
    """
    if not source.startswith("hf:"):
        return shlex.quote(source)
    where, _, query = source[len("hf:"):].partition("?")
    options = {"split": "--split", "image": "--image-column", "label": "--label-column", "id": "--id-column"}
    given = dict(parse_qsl(query))
    return " ".join([f"--hf {shlex.quote(unquote(where))}"]
                    + [f"{flag} {shlex.quote(given[name])}" for name, flag in options.items() if name in given])
