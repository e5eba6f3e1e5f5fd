"""Where do embeddings live on disk, and how are they read back?

A cache folder holds any number of *embedding sets*, one per combination of backbone, weights,
preprocessing and precision (its *key*)::

    CACHE/
      hashes.csv                  path, size, mtime_ns -> sha256 memo (skips re-reading unchanged files)
      errors.csv                  samples skipped by the last run: id, path, reason
      embeddings/<key>/
        settings.json             what the key stands for (written when the set is created)
        chunks/chunk-*.npz        committed work: sha256 (n,), features (n, d) float32, failures
        features.npy              (n_samples, d) float32 in dataset order; np.load(mmap_mode="r")
        samples.csv               id, path, sha256, label, label_name (same row order)
        info.json                 the sidecar: settings, versions, class_names, fingerprint, ...

Vectors are stored per content hash, so a renamed file reuses its vector and an edited one is
recomputed. Every file is written to a temporary name, fsynced and renamed into place, so a killed
run leaves only whole chunks behind and the next run computes just what is missing. Reading never
needs torch: :func:`load_embeddings` returns memory-mapped features.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from coreclean._internal.hashing import sha256_text
from coreclean._internal.validation import check_features
from coreclean.exceptions import CacheError, CacheMismatchError, InputValidationError
from coreclean.embedding.manifest import Manifest, Problem, manifest_from_frame, read_manifest

__all__ = [
    "Embeddings",
    "load_embeddings",
    "read_samples",
    "read_cache_info",
    "list_embedding_sets",
    "write_feature_cache",
    "ChunkStore",
    "make_key",
    "write_errors",
    "publish_embedding_set",
    "samples_frame",
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
    """Return the keys of the finished embedding sets in ``cache_dir``, most recent first."""
    root = Path(cache_dir) / "embeddings"
    found = []
    for info_path in root.glob("*/info.json"):
        try:
            updated = float(json.loads(info_path.read_text(encoding="utf-8")).get("updated_at", 0))
        except (OSError, ValueError):
            continue
        found.append((updated, info_path.parent.name))
    return [key for _, key in sorted(found, reverse=True)]


def read_cache_info(cache_dir: str | os.PathLike, *, key: str | None = None) -> dict[str, Any]:
    """Return the JSON sidecar of an embedding set (the most recent one unless ``key`` is given).

    Raises
    ------
    CacheError
        If ``cache_dir`` holds no finished embedding set, or none under ``key``.
    """
    info_path = _set_dir(cache_dir, key) / "info.json"
    try:
        return json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CacheError(f"cannot read {info_path}: {err}; re-run `coreclean embed` to rebuild it.") from err


def read_samples(cache_dir: str | os.PathLike, *, key: str | None = None) -> pd.DataFrame:
    """Return the samples table: columns id, path (absolute), sha256, label (int64), label_name.

    Rows are in the same order as the rows of ``features``; only successfully embedded samples appear.

    Raises
    ------
    CacheError
        If the embedding set is missing or its table is unreadable.
    """
    path = _set_dir(cache_dir, key) / "samples.csv"
    try:
        frame = pd.read_csv(
            path, dtype={"id": str, "path": str, "sha256": str, "label_name": str, "label": np.int64},
            keep_default_na=False, encoding="utf-8",
        )
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise CacheError(f"cannot read {path}: {err}; re-run `coreclean embed` to rebuild it.") from err
    return frame[SAMPLE_COLUMNS]


def load_embeddings(cache_dir: str | os.PathLike, *, key: str | None = None) -> Embeddings:
    """Load an embedding set: the most recent one in ``cache_dir``, or the one named ``key``.

    Parameters
    ----------
    cache_dir : str or os.PathLike
        A folder written by ``coreclean embed`` / :func:`coreclean.embed_dataset` /
        :func:`write_feature_cache`.
    key : str, optional
        A sub-folder name of ``cache_dir/embeddings`` (see :func:`list_embedding_sets`).

    Returns
    -------
    Embeddings
        ``features`` is a read-only float32 memmap, so a large set never has to fit in RAM.

    Raises
    ------
    CacheError
        If there is no finished set, or its files disagree with each other.

    Examples
    --------
    >>> emb = coreclean.load_embeddings("cache/")  # doctest: +SKIP
    >>> emb.features.shape, emb.class_names[:3]  # doctest: +SKIP
    """
    set_dir = _set_dir(cache_dir, key)
    info = read_cache_info(cache_dir, key=set_dir.name)
    samples = read_samples(cache_dir, key=set_dir.name)
    try:
        features = np.load(set_dir / "features.npy", mmap_mode="r")
    except (OSError, ValueError) as err:
        raise CacheError(f"cannot read {set_dir / 'features.npy'}: {err}; re-run `coreclean embed`.") from err
    if features.ndim != 2 or features.shape[0] != len(samples) or features.dtype != np.float32:
        raise CacheError(
            f"{set_dir} is inconsistent: features {features.shape} {features.dtype} for {len(samples)} samples; "
            "delete that folder and re-run `coreclean embed`."
        )
    return Embeddings(
        sample_ids=samples["id"].to_numpy(dtype=object),
        features=features,
        labels=samples["label"].to_numpy(dtype=np.int64),
        class_names=list(info["class_names"]),
    )


def _set_dir(cache_dir: str | os.PathLike, key: str | None) -> Path:
    cache_dir = Path(cache_dir)
    if key is None:
        keys = list_embedding_sets(cache_dir)
        if not keys:
            raise CacheError(
                f"no embedding set in {cache_dir}; create one with `coreclean embed SOURCE --cache {cache_dir}`."
            )
        key = keys[0]
    set_dir = cache_dir / "embeddings" / key
    if not (set_dir / "info.json").is_file():
        available = list_embedding_sets(cache_dir)
        raise CacheError(f"no finished embedding set {key!r} in {cache_dir}; available: {available}.")
    return set_dir


# --------------------------------------------------------------------------------------------
# writing


def make_key(settings: dict[str, Any], *, prefix: str) -> str:
    """Return a readable, collision-safe folder name for an embedding set's ``settings``."""
    digest = sha256_text(json.dumps(settings, sort_keys=True))[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in prefix)
    return f"{safe}-{digest}"


class ChunkStore:
    """The committed chunks of one embedding set: which content hashes are done or failed.

    ``done`` maps sha256 -> (chunk number, row); ``failed`` maps sha256 -> reason. Both are rebuilt
    from the chunk files on construction, so whatever a killed run committed is reused.
    """

    def __init__(self, set_dir: Path, settings: dict[str, Any]) -> None:
        self.set_dir = set_dir
        self.chunk_dir = set_dir / "chunks"
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        settings_path = set_dir / "settings.json"
        if settings_path.is_file():
            stored = json.loads(settings_path.read_text(encoding="utf-8"))
            if stored != json.loads(json.dumps(settings)):
                raise CacheMismatchError(
                    f"{set_dir} was built with other settings ({stored}); delete that folder to rebuild it."
                )
        else:
            atomic_write_text(settings_path, json.dumps(settings, indent=2, sort_keys=True))
        self.chunk_files: list[Path] = []
        self.done: dict[str, tuple[int, int]] = {}
        self.failed: dict[str, str] = {}
        self._rebuild_index()

    def _rebuild_index(self) -> None:
        for stale in self.chunk_dir.glob(".chunk-*.tmp-*"):
            if not _pid_alive(stale.name.rsplit("-", 1)[-1]):
                with contextlib.suppress(OSError):
                    stale.unlink()
        for path in sorted(self.chunk_dir.glob("chunk-*.npz")):
            try:
                with np.load(path, allow_pickle=False) as data:
                    shas = data["sha256"].tolist()
                    failed = zip(data["failed_sha256"].tolist(), data["failed_reason"].tolist())
                    failed = list(failed)
            except (OSError, ValueError, KeyError) as err:
                logger.warning("ignoring unreadable chunk %s (%s); its samples will be recomputed", path, err)
                continue
            self._register(path, shas, failed)
        logger.debug("%s: %d embedded, %d failed from %d chunk(s)", self.set_dir.name, len(self.done),
                     len(self.failed), len(self.chunk_files))

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
        """Write the stored vector of each of ``shas`` into the rows of ``out``, one chunk at a time."""
        where = np.array([self.done[s] for s in shas], dtype=np.int64).reshape(-1, 2)
        order = np.argsort(where[:, 0], kind="stable")
        chunk_ids, starts = np.unique(where[order, 0], return_index=True)
        bounds = [*starts[1:], len(order)]
        for chunk_id, start, stop in zip(chunk_ids, starts, bounds):
            positions = order[start:stop]
            with np.load(self.chunk_files[chunk_id], allow_pickle=False) as data:
                out[np.sort(positions)] = data["features"][where[np.sort(positions), 1]]


def _pid_alive(text: str) -> bool:
    try:
        os.kill(int(text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


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
    array of ``len(rows)`` rows); it is called on bounded blocks so RAM use stays small. When the
    existing set already has the same fingerprint only ``info.json`` is refreshed.

    Returns
    -------
    dict
        The sidecar that was written.
    """
    fingerprint = _fingerprint(set_dir.name, samples, class_names)
    n_samples = len(samples)
    info_path = set_dir / "info.json"
    features_path = set_dir / "features.npy"
    previous = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    unchanged = previous.get("fingerprint") == fingerprint and features_path.is_file()
    if not unchanged:
        _write_features(features_path, n_samples, dim, fill)
        atomic_write_text(set_dir / "samples.csv", samples[SAMPLE_COLUMNS].to_csv(index=False))
    now = time.time()
    info = {
        **info,
        "key": set_dir.name,
        "dim": int(dim),
        "n_samples": int(n_samples),
        "class_names": list(class_names),
        "fingerprint": fingerprint,
        "coreclean_version": __version__,
        "created_at": previous.get("created_at", now) if unchanged else now,
        "updated_at": now,
    }
    atomic_write_text(info_path, json.dumps(info, indent=2, ensure_ascii=False))
    return info


def _write_features(path: Path, n_samples: int, dim: int, fill: Callable[[np.ndarray, slice], None]) -> None:
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_samples, dim))
        for start in range(0, n_samples, _ASSEMBLY_ROWS):
            rows = slice(start, min(start + _ASSEMBLY_ROWS, n_samples))
            block = np.empty((rows.stop - rows.start, dim), dtype=np.float32)
            fill(block, rows)
            out[rows] = block
        out.flush()
        del out


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


# --------------------------------------------------------------------------------------------
# bring your own features


def write_feature_cache(
    cache_dir: str | os.PathLike,
    features: np.ndarray | str | os.PathLike,
    manifest: str | os.PathLike | pd.DataFrame,
    *,
    name: str = "user",
) -> str:
    """Make an embedding set from your own vectors (CLIP, DINO, ...), so every command can use them.

    Parameters
    ----------
    cache_dir : str or os.PathLike
        The cache folder to write into (created if needed).
    features : np.ndarray or path to a .npy file
        ``(n_rows, n_features)`` numbers; row ``i`` belongs to the manifest's ``i``-th data row.
    manifest : path to a CSV, or a pandas.DataFrame
        Columns ``path,label`` and optionally ``id``. Paths are relative to the CSV's folder (or the
        current folder for a DataFrame) and need not exist.
    name : str
        A prefix for the embedding set's key, e.g. ``"clip-vit-b32"``.

    Returns
    -------
    str
        The key of the embedding set (a folder under ``cache_dir/embeddings``).

    Raises
    ------
    InputValidationError
        If the features are not 2-D, hold NaN/inf, or their row count differs from the manifest's.
    ManifestError
        If the manifest lacks columns or has no usable row. Rows with an empty label or a duplicate
        path/id are skipped and listed in ``cache_dir/errors.csv``.
    """
    cache_dir = Path(cache_dir)
    if isinstance(features, (str, os.PathLike)):
        try:
            features = np.load(features, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise InputValidationError(f"cannot read features file {features} as a .npy array: {err}") from err
    if isinstance(manifest, pd.DataFrame):
        table = manifest_from_frame(manifest, root=Path.cwd(), source=Path("<DataFrame>"), check_files=False)
        n_rows, source = len(manifest), "<DataFrame>"
    else:
        table = read_manifest(manifest, check_files=False)
        n_rows, source = _count_rows(Path(manifest)), str(Path(manifest).resolve())
    array = check_features(features)
    if array.shape[0] != n_rows:
        raise InputValidationError(
            f"features has {array.shape[0]} rows but the manifest {source} has {n_rows} data rows; "
            "row i of the features must belong to row i of the manifest."
        )
    digest = _array_digest(array)
    settings = {"backbone": name, "weights": f"features:{digest}", "transform": "user-provided features",
                "image_size": None, "precision": str(array.dtype)}
    set_dir = cache_dir / "embeddings" / make_key(settings, prefix=name)
    set_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(set_dir / "settings.json", json.dumps(settings, indent=2, sort_keys=True))
    rows = table.rows
    samples = samples_frame(table, np.arange(len(table)), [""] * len(table))

    def fill(out: np.ndarray, block: slice) -> None:
        out[:] = array[rows[block]]

    write_errors(cache_dir, table.problems)
    publish_embedding_set(
        set_dir, samples=samples, class_names=table.class_names, dim=array.shape[1], fill=fill,
        info={**settings, "weights_source": "user-provided features", "source": source,
              "n_skipped": len(table.problems)},
    )
    logger.info("wrote %d user-provided vectors to %s (%d row(s) skipped)", len(table), set_dir, len(table.problems))
    return set_dir.name


def _count_rows(path: Path) -> int:
    return len(pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig"))


def _array_digest(array: np.ndarray) -> str:
    digest = hashlib.sha256(f"{array.shape}".encode())
    for start in range(0, array.shape[0], _ASSEMBLY_ROWS):
        digest.update(np.ascontiguousarray(array[start : start + _ASSEMBLY_ROWS]).tobytes())
    return digest.hexdigest()
