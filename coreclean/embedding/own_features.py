"""Bring your own vectors (CLIP, DINO, ...): an embedding set made from an array and a manifest.

The set is a cache set like any other (same files, checksums and sidecar), so every command reads it;
its key stands for the array's content, so writing the same vectors again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from coreclean._internal.atomic import atomic_write_text
from coreclean._internal.validation import check_features
from coreclean.embedding.cache import dataset_dir, publish_embedding_set, samples_frame, write_errors
from coreclean.embedding.manifest import manifest_from_frame, read_manifest
from coreclean.exceptions import InputValidationError

__all__ = ["write_feature_cache"]

logger = logging.getLogger(__name__)

_DIGEST_ROWS = 16384
"""Rows hashed per step of the array digest (the digest is of all bytes in order, so it does not depend on this)."""



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
    set_dir, stored = dataset_dir(cache_dir, settings, source, prefix=name)
    set_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(set_dir / "settings.json", json.dumps(stored, indent=2, sort_keys=True))
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
    for start in range(0, array.shape[0], _DIGEST_ROWS):
        digest.update(np.ascontiguousarray(array[start : start + _DIGEST_ROWS]).tobytes())
    return digest.hexdigest()
