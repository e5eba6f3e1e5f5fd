"""Where do embeddings live on disk, and how are they read back?

A cache folder holds any number of *embedding sets* side by side, one per dataset (the folder or
CSV embedded) and combination of backbone, weights, preprocessing and precision (its *key*)::

    CACHE/
      hashes.csv                  path, size, mtime_ns -> sha256 memo (skips re-reading unchanged files)
      errors.csv                  samples skipped by the last run: id, path, reason
      requests.json               which set each embed request made (coreclean.embedding.reuse)
      embeddings/<key>/
        settings.json             what the key stands for: settings and dataset (written at creation)
        chunks/chunk-*.npz        committed work: sha256 (n,), features (n, d) float32, failures
        features.npy              (n_samples, d) float32 in dataset order; np.load(mmap_mode="r")
        samples.csv               id, path, sha256, label, label_name (same row order)
        info.json                 the sidecar: settings, versions, class_names, fingerprint,
                                  format_version, checksums of samples.csv and of features.npy blocks
        verified.json             when features.npy last matched its checksums (a memo)

Vectors are stored per content hash, so a renamed file reuses its vector and an edited one is
recomputed; sets with the same settings read each other's chunks, so embedding a second dataset
recomputes only images the first did not have. Every file is written to a temporary name, fsynced
and renamed into place, so a killed run leaves only whole chunks behind and the next run computes
just what is missing. Reading never needs torch: :func:`load_embeddings` returns memory-mapped
features after checking them against the checksums in ``info.json`` (``samples.csv`` on every
read; ``features.npy`` block by block, once after each change of the file: ``verified.json``
remembers its inode, size and times). Damage is a :class:`CacheError` naming the command that
repairs it (``coreclean embed``, which rewrites damaged files from the chunks and recomputes
damaged chunks). Where a cache holds several sets and none is named, readers stop and list them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from coreclean import __version__
from coreclean._internal.atomic import atomic_open, atomic_path, atomic_write_text
from coreclean._internal.hashing import sha256_file, sha256_text
from coreclean.exceptions import CacheError
from coreclean.embedding.chunks import ChunkStore, shared_chunk_dirs
from coreclean.embedding.integrity import FORMAT_VERSION, file_stamp, open_features, repair_hint
from coreclean.embedding.manifest import Manifest, Problem

__all__ = [
    "Embeddings",
    "load_embeddings",
    "read_samples",
    "read_cache_info",
    "list_embedding_sets",
    "ChunkStore",
    "make_key",
    "write_errors",
    "publish_embedding_set",
    "set_is_current",
    "samples_frame",
    "dataset_dir",
    "shared_chunk_dirs",
]

logger = logging.getLogger(__name__)

SAMPLE_COLUMNS = ["id", "path", "sha256", "label", "label_name"]
ERROR_COLUMNS = ["id", "path", "reason"]
_ASSEMBLY_ROWS = 16384


class Embeddings(NamedTuple):
    """One embedding set, ready to score.

    Attributes
    ----------
    sample_ids : np.ndarray
        ``(n_samples,)`` object array of str ids.
    features : np.ndarray
        ``(n_samples, n_features)`` float32, memory-mapped read-only.
    labels : np.ndarray
        ``(n_samples,)`` int64 indices into ``class_names``.
    class_names : list of str
    """

    sample_ids: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    class_names: list[str]


# --------------------------------------------------------------------------------------------
# reading


def list_embedding_sets(cache_dir: str | os.PathLike) -> list[str]:
    """Return the keys of the finished embedding sets in ``cache_dir``, most recent first.

    A set whose ``info.json`` is unreadable is listed last, so a reader can say what repairs it.
    """
    root = Path(cache_dir) / "embeddings"
    found = []
    for info_path in root.glob("*/info.json"):
        try:
            updated = float(json.loads(info_path.read_text(encoding="utf-8")).get("updated_at", 0))
        except (OSError, ValueError, AttributeError, TypeError):
            updated = float("-inf")
        found.append((updated, info_path.parent.name))
    return [key for _, key in sorted(found, reverse=True)]


def read_cache_info(cache_dir: str | os.PathLike, *, key: str | None = None) -> dict[str, Any]:
    """Return the JSON sidecar of an embedding set: the only one in ``cache_dir``, or the one named ``key``.

    Raises
    ------
    CacheError
        If ``cache_dir`` holds no finished embedding set, none under ``key``, several and no ``key``
        (the message lists them), or the sidecar is unreadable or of another cache format (the
        message names the command to run).
    """
    set_dir = _set_dir(cache_dir, key)
    info_path = set_dir / "info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:
        raise CacheError(f"cannot read {info_path} ({err}); {repair_hint(set_dir)}") from err
    version = info.get("format_version", 1)
    if version != FORMAT_VERSION:
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise CacheError(f"embedding set {set_dir.name} in {cache_dir} has cache format {version}, newer than "
                             f"this coreclean ({__version__}) reads ({FORMAT_VERSION}); upgrade coreclean.")
        raise CacheError(f"embedding set {set_dir.name} in {cache_dir} was written by an older coreclean (cache "
                         f"format {version}, this one reads {FORMAT_VERSION}); {repair_hint(set_dir, info)} "
                         "(nothing is recomputed; the key and its sessions stay).")
    return info


def read_samples(cache_dir: str | os.PathLike, *, key: str | None = None) -> pd.DataFrame:
    """Return the samples table: columns id, path (absolute), sha256, label (int64), label_name.

    Rows are in the same order as the rows of ``features``; only successfully embedded samples appear.
    The file's bytes are checked against the checksum in ``info.json`` first.

    Raises
    ------
    CacheError
        If the embedding set is missing, or its table is unreadable or does not match its checksum.
    """
    info = read_cache_info(cache_dir, key=key)
    set_dir = Path(cache_dir) / "embeddings" / info["key"]
    path = set_dir / "samples.csv"
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CacheError(f"cannot read {path} ({err}); {repair_hint(set_dir, info)}") from err
    checksums = info.get("checksums")
    if not isinstance(checksums, dict) or hashlib.sha256(data).hexdigest() != checksums.get("samples.csv"):
        raise CacheError(f"{path} was changed or damaged since it was written (its checksum differs): "
                         f"its rows and labels cannot be trusted; {repair_hint(set_dir, info)}. To change "
                         "labels, edit the dataset (or use a session) and embed again.")
    try:
        frame = pd.read_csv(
            io.BytesIO(data), dtype={"id": str, "path": str, "sha256": str, "label_name": str, "label": np.int64},
            keep_default_na=False, encoding="utf-8",
        )
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise CacheError(f"cannot read {path} ({err}); {repair_hint(set_dir, info)}") from err
    return frame[SAMPLE_COLUMNS]


def load_embeddings(cache_dir: str | os.PathLike, *, key: str | None = None) -> Embeddings:
    """Load an embedding set: the only one in ``cache_dir``, or the one named ``key``.

    Parameters
    ----------
    cache_dir : str or os.PathLike
        A folder written by ``coreclean embed`` / :func:`coreclean.embed_dataset` /
        :func:`coreclean.embedding.own_features.write_feature_cache`.
    key : str, optional
        A sub-folder name of ``cache_dir/embeddings`` (see :func:`list_embedding_sets`); needed
        when the cache holds more than one set.

    Returns
    -------
    Embeddings
        ``features`` is a read-only float32 memmap, so a large set never has to fit in RAM. It and
        the samples table matched their checksums.

    Raises
    ------
    CacheError
        If there is no finished set, several and no ``key``, or its files are damaged or disagree
        with each other (the message names the command that repairs them).

    Examples
    --------
    >>> emb = coreclean.load_embeddings("cache/")  # doctest: +SKIP
    >>> emb.features.shape, emb.class_names[:3]  # doctest: +SKIP
    """
    info = read_cache_info(cache_dir, key=key)
    set_dir = Path(cache_dir) / "embeddings" / info["key"]
    samples = read_samples(cache_dir, key=set_dir.name)
    features = open_features(set_dir, info)
    if len(samples) != features.shape[0]:
        raise CacheError(f"{set_dir} is inconsistent: {features.shape[0]} vectors for {len(samples)} samples; "
                         f"{repair_hint(set_dir, info)}.")
    return Embeddings(
        sample_ids=samples["id"].to_numpy(dtype=object),
        features=features,
        labels=samples["label"].to_numpy(dtype=np.int64),
        class_names=list(info["class_names"]),
    )


def derived_dir(cache_dir: str | os.PathLike, key: str) -> Path:
    """Where work derived from embedding set ``key``'s features alone is cached (a ranker's ``memory``).

    The label-blind work (the PCA projection's fit, the neighbour graph) that every ``classes``,
    ``rank`` and session command would otherwise redo; entries are keyed by the features' content
    and settings (:class:`joblib.Memory`), so deleting the folder only costs time.
    """
    return Path(cache_dir) / "derived" / key


def _set_dir(cache_dir: str | os.PathLike, key: str | None) -> Path:
    cache_dir = Path(cache_dir)
    if key is None:
        keys = list_embedding_sets(cache_dir)
        if not keys:
            raise CacheError(
                f"no embedding set in {cache_dir}; create one with `coreclean embed SOURCE --cache {cache_dir}`."
            )
        if len(keys) > 1:
            choices = "\n".join(f"  {k}  ({_describe(cache_dir / 'embeddings' / k)})" for k in keys)
            raise CacheError(f"{cache_dir} holds {len(keys)} embedding sets; pick one with --key KEY "
                             f"(key=... in Python):\n{choices}")
        key = keys[0]
    set_dir = cache_dir / "embeddings" / key
    if not (set_dir / "info.json").is_file():
        available = list_embedding_sets(cache_dir)
        raise CacheError(f"no finished embedding set {key!r} in {cache_dir}; available: {available}.")
    return set_dir


def _describe(set_dir: Path) -> str:
    """A few words on an embedding set for a list of choices: its source, size and backbone."""
    try:
        info = json.loads((set_dir / "info.json").read_text(encoding="utf-8"))
        return (f"{info.get('source')}, {info.get('n_samples')} samples, {info.get('backbone')} "
                f"at {info.get('image_size')} px")
    except (OSError, ValueError, AttributeError):
        return "unreadable info.json"


# --------------------------------------------------------------------------------------------
# writing


def make_key(settings: dict[str, Any], *, prefix: str) -> str:
    """Return a readable, collision-safe folder name for an embedding set's ``settings``."""
    digest = sha256_text(json.dumps(settings, sort_keys=True))[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in prefix)
    return f"{safe}-{digest}"


def dataset_dir(cache_dir: Path, settings: dict[str, Any], source: str, *, prefix: str) -> tuple[Path, dict[str, Any]]:
    """Where the embedding set of dataset ``source`` made with ``settings`` lives, and its settings file's content.

    The key covers the settings and the dataset, so another dataset embedded into the same cache
    gets a set of its own beside the first. A set of the same dataset from cache format 1 (keyed by
    the settings alone) keeps its key, so sessions started on it stay valid once it is upgraded.
    """
    root = Path(cache_dir) / "embeddings"
    legacy = root / make_key(settings, prefix=prefix)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if json.loads((legacy / "info.json").read_text(encoding="utf-8")).get("source") == source:
            return legacy, dict(settings)
    keyed = {**settings, "dataset": source}
    name = Path(source).stem if source.endswith(".csv") else Path(source).name
    return root / make_key(keyed, prefix=f"{prefix}-{name or 'data'}"), keyed


def write_errors(cache_dir: Path, problems: Iterable[Problem]) -> Path:
    """Write ``cache_dir/errors.csv`` (id, path, reason) atomically; return its path."""
    frame = pd.DataFrame([(p.sample_id, p.path, p.reason) for p in problems], columns=ERROR_COLUMNS)
    path = cache_dir / "errors.csv"
    atomic_write_text(path, frame.to_csv(index=False))
    return path


def publish_embedding_set(
    set_dir: Path,
    *,
    samples: pd.DataFrame,
    class_names: list[str],
    dim: int,
    fill: Callable[[np.ndarray, slice], None],
    info: dict[str, Any],
) -> dict[str, Any]:
    """Write ``features.npy``, ``samples.csv`` and ``info.json`` of a finished set, each atomically.

    ``fill(out, rows)`` must write the float32 vectors of ``samples.iloc[rows]`` into ``out`` (an
    array of ``len(rows)`` rows); it is called on bounded blocks so RAM use stays small. The sidecar
    records the sha256 of ``samples.csv`` and of every block of ``features.npy``. When the existing
    set already has the same fingerprint, this cache format and files matching their checksums,
    only ``info.json`` is refreshed; otherwise (new content, damage, an older format) both files are
    written again.

    Returns
    -------
    dict
        The sidecar that was written.
    """
    fingerprint = _fingerprint(set_dir.name, samples, class_names)
    n_samples = len(samples)
    info_path = set_dir / "info.json"
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(info_path.read_text(encoding="utf-8"))
        previous = loaded if isinstance(loaded, dict) else {}
    unchanged = _holds(set_dir, previous, fingerprint)
    if unchanged:
        checksums = previous["checksums"]
    else:
        if previous.get("fingerprint") == fingerprint:
            logger.warning("%s: files damaged or from an older cache format; rewriting them from the chunks", set_dir)
        digests = _write_features(set_dir / "features.npy", n_samples, dim, fill)
        table = samples[SAMPLE_COLUMNS].to_csv(index=False).encode("utf-8")
        with atomic_open(set_dir / "samples.csv") as handle:
            handle.write(table)
        checksums = {"samples.csv": hashlib.sha256(table).hexdigest(), "block_rows": _ASSEMBLY_ROWS,
                     "features.npy": digests}
    now = time.time()
    info = {
        **info,
        "key": set_dir.name,
        "format_version": FORMAT_VERSION,
        "dim": int(dim),
        "n_samples": int(n_samples),
        "class_names": list(class_names),
        "fingerprint": fingerprint,
        "checksums": checksums,
        "coreclean_version": __version__,
        "created_at": previous.get("created_at", now) if unchanged else now,
        "updated_at": now,
    }
    atomic_write_text(info_path, json.dumps(info, indent=2, ensure_ascii=False))
    if not unchanged:
        with contextlib.suppress(OSError):  # just written from checked chunks: no need to hash it again
            atomic_write_text(set_dir / "verified.json", json.dumps(file_stamp(set_dir / "features.npy", info)))
    return info


def set_is_current(set_dir: Path, samples: pd.DataFrame, class_names: list[str]) -> bool:
    """Whether the published set in ``set_dir`` holds exactly ``samples`` (ids, content hashes, labels) of
    ``class_names``, in this cache format, with files that match their checksums."""
    try:
        info = json.loads((set_dir / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and _holds(set_dir, info, _fingerprint(set_dir.name, samples, class_names))


def _holds(set_dir: Path, info: dict[str, Any], fingerprint: str) -> bool:
    """Whether the set whose sidecar is ``info`` has content ``fingerprint`` and intact files of this format."""
    return info.get("fingerprint") == fingerprint and _intact(set_dir, info)


def _intact(set_dir: Path, info: dict[str, Any]) -> bool:
    """Whether a set's files are of this format and match the checksums in its sidecar ``info``."""
    if info.get("format_version") != FORMAT_VERSION:
        return False
    try:
        if sha256_file(set_dir / "samples.csv") != info["checksums"]["samples.csv"]:
            return False
        open_features(set_dir, info)
    except (OSError, KeyError, TypeError, ValueError, CacheError):
        return False
    return True


def _write_features(path: Path, n_samples: int, dim: int, fill: Callable[[np.ndarray, slice], None]) -> list[str]:
    """Write the (n_samples, dim) float32 ``.npy`` block by block; return each block's sha256."""
    digests = []
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_samples, dim))
        for start in range(0, n_samples, _ASSEMBLY_ROWS):
            rows = slice(start, min(start + _ASSEMBLY_ROWS, n_samples))
            block = np.empty((rows.stop - rows.start, dim), dtype=np.float32)
            fill(block, rows)
            digests.append(hashlib.sha256(block).hexdigest())
            out[rows] = block
        out.flush()
        del out
    return digests


def _fingerprint(key: str, samples: pd.DataFrame, class_names: list[str]) -> str:
    digest = hashlib.sha256(json.dumps([key, class_names], ensure_ascii=False).encode("utf-8"))
    for row in samples[["id", "sha256", "label"]].itertuples(index=False):
        digest.update(f"{row[0]}\t{row[1]}\t{row[2]}\n".encode("utf-8"))
    return digest.hexdigest()


def samples_frame(manifest: Manifest, positions: np.ndarray, shas: Sequence[str]) -> pd.DataFrame:
    """The samples table for ``manifest`` rows at ``positions`` with their content hashes ``shas``."""
    labels = manifest.labels[positions]
    return pd.DataFrame(
        {
            "id": [manifest.sample_ids[i] for i in positions],
            "path": [str(manifest.paths[i]) for i in positions],
            "sha256": list(shas),
            "label": labels.astype(np.int64),
            "label_name": [manifest.class_names[k] for k in labels],
        }
    )
