"""The ranker's view as the arrays cleanlab takes (labels, pred_probs, a kNN graph), and your own pred_probs in.

:func:`read_pred_probs` loads a ``pred_probs.npy`` of your own model and puts its rows in the
data's sample order (by an ids file, one id a line, or as given) and its columns in the data's
class order (by a list of class names, one per column, or as given).

:func:`export_cleanlab` writes into ``out_dir``:

- ``labels.npy``: int64 class index per sample (the labels the ranker scored against);
- ``pred_probs.npy``: float32 (n_samples, n_classes), rows summing to 1 (the ranker's class
  probabilities), for ``cleanlab.filter.find_label_issues(labels, pred_probs)``;
- ``knn_graph.npz``: a ``scipy.sparse`` CSR matrix (``scipy.sparse.load_npz``), row i holding the
  cosine *distances* ``1 - similarity`` to sample i's neighbours, nearest first, as cleanlab's
  ``Datalab.find_issues(knn_graph=...)`` expects;
- ``ids.txt``: the sample id of each row, one a line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from coreclean._internal.atomic import atomic_write_text
from coreclean._internal.validation import read_npy
from coreclean.exceptions import InputValidationError, ManifestError

__all__ = ["export_cleanlab", "read_pred_probs"]


def read_pred_probs(path: str | os.PathLike, *, sample_ids: np.ndarray, class_names: list[str],
                    ids_path: str | os.PathLike | None = None, column_names: list[str] | None = None,
                    allow_extra_classes: bool = False) -> tuple[np.ndarray, list[str]]:
    """Load ``path`` (an (n_rows, n_columns) .npy) aligned to the data: ``(probs, class_names)``.

    Rows: row i is sample ``sample_ids[i]``, or, with ``ids_path``, the sample that file's line i
    names (the file must name each sample once). Columns: column k is ``class_names[k]``, or, with
    ``column_names``, the class that name k names; each class of the data must be among them.
    Classes that no sample carries are kept after the data's, in ``column_names`` order, where
    ``allow_extra_classes``; the returned class names are the data's followed by those. The values
    are not validated here (see :func:`coreclean._internal.validation.check_pred_probs`).

    Raises
    ------
    InputValidationError
        An unreadable or non-2-D file; an ids file whose ids are not the data's, once each; a row or
        column count that does not match; unknown, missing or repeated class names.
    """
    probs = read_npy(path, ndim=2, holds="(n_samples, n_classes)")
    sample_ids = np.asarray(sample_ids).astype(str)
    if ids_path is not None:
        probs = probs[_row_order(_read_ids(ids_path), sample_ids, probs.shape[0], path, ids_path)]
    elif probs.shape[0] != sample_ids.size:
        raise InputValidationError(f"{path} has {probs.shape[0]} rows but there are {sample_ids.size} samples; row i "
                                   "must belong to label i (or name each row's sample with --ids FILE).")
    if column_names is None:
        if probs.shape[1] != len(class_names):
            raise InputValidationError(
                f"{path} has {probs.shape[1]} columns but the data has {len(class_names)} classes "
                f"({_shown(class_names)}); name each column's class with --class-names.")
        return probs, list(class_names)
    return _column_order(probs, column_names, list(class_names), path, allow_extra_classes)


def _read_ids(ids_path: str | os.PathLike) -> np.ndarray:
    try:
        lines = Path(ids_path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputValidationError(f"cannot read ids file {ids_path}: {err}") from err
    while lines and not lines[-1].strip():
        lines.pop()
    return np.asarray([line.strip() for line in lines], dtype=str)


def _row_order(ids: np.ndarray, sample_ids: np.ndarray, n_rows: int, path, ids_path) -> np.ndarray:
    """For each sample (in data order), the row of ``path`` that ``ids`` says holds it."""
    if ids.size != n_rows:
        raise InputValidationError(f"{ids_path} names {ids.size} ids but {path} has {n_rows} rows; "
                                   "give one id per row, in row order.")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise InputValidationError(f"{ids_path} names {int((counts > 1).sum())} id(s) more than once "
                                   f"(first: {str(unique[counts > 1][0])!r}); each row must be a different sample.")
    position = {sid: i for i, sid in enumerate(ids)}
    known = set(sample_ids)
    unknown = [sid for sid in ids if sid not in known]
    if unknown:
        raise InputValidationError(f"{len(unknown)} id(s) of {ids_path} are not samples of the data (first: "
                                   f"{str(unknown[0])!r}); the ids must match the labels' (or the cache's) ids.")
    missing = [sid for sid in sample_ids if sid not in position]
    if missing:
        raise InputValidationError(f"{len(missing)} sample(s) of the data have no row in {path} (first: "
                                   f"{str(missing[0])!r}); give a row of probabilities for every sample.")
    return np.asarray([position[sid] for sid in sample_ids], dtype=np.int64)


def _column_order(probs: np.ndarray, column_names: list[str], class_names: list[str], path,
                  allow_extra: bool) -> tuple[np.ndarray, list[str]]:
    names = [str(name).strip() for name in column_names]
    if len(names) != probs.shape[1]:
        raise InputValidationError(f"--class-names names {len(names)} classes but {path} has {probs.shape[1]} "
                                   "columns; name one class per column, in column order.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputValidationError(f"--class-names names {repeated[0]!r} more than once; each column is one class.")
    missing = [name for name in class_names if name not in names]
    if missing:
        raise InputValidationError(f"class(es) {_shown(missing)} of the data are not in --class-names "
                                   f"({_shown(names)}); every class needs a column.")
    extra = [name for name in names if name not in class_names]
    if extra and not allow_extra:
        raise InputValidationError(f"--class-names names {_shown(extra)}, not a class of the data "
                                   f"({_shown(class_names)}); name exactly the data's classes.")
    order = [names.index(name) for name in class_names + extra]
    return probs[:, order], class_names + extra


def _shown(names: list[str], limit: int = 12) -> str:
    return ", ".join(repr(name) for name in names[:limit]) + (" ..." if len(names) > limit else "")


def export_cleanlab(ids: np.ndarray, labels: np.ndarray, pred_probs: np.ndarray, neighbor_indices: np.ndarray,
                    neighbor_similarities: np.ndarray, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``labels.npy``, ``pred_probs.npy``, ``knn_graph.npz`` and ``ids.txt``; return their paths.

    Raises
    ------
    ManifestError
        ``out_dir`` holds a ``labels.npy`` already, or the arrays disagree in length.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(pred_probs, dtype=np.float64)
    indices = np.asarray(neighbor_indices, dtype=np.int64)
    distances = np.clip(1.0 - np.asarray(neighbor_similarities, dtype=np.float64), 0.0, None)
    n = labels.size
    if len(ids) != n or probs.shape[0] != n or indices.shape[0] != n or distances.shape != indices.shape:
        raise ManifestError(f"arrays disagree: {len(ids)} ids, {n} labels, {probs.shape[0]} pred_probs rows, "
                            f"{indices.shape} neighbour indices, {distances.shape} similarities.")
    out = Path(out_dir)
    if (out / "labels.npy").exists():
        raise ManifestError(f"{out / 'labels.npy'} exists; export into a new folder (--out DIR).")
    out.mkdir(parents=True, exist_ok=True)
    probs = np.clip(probs, 0.0, None)
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    order = np.argsort(distances, axis=1, kind="stable")
    rows = np.take_along_axis(indices, order, axis=1)
    dist = np.take_along_axis(distances, order, axis=1)
    k = indices.shape[1]
    graph = sp.csr_matrix((dist.ravel(), rows.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    paths = {"labels": out / "labels.npy", "pred_probs": out / "pred_probs.npy", "knn_graph": out / "knn_graph.npz",
             "ids": out / "ids.txt"}
    np.save(paths["labels"], labels)
    np.save(paths["pred_probs"], probs)
    sp.save_npz(paths["knn_graph"], graph)
    atomic_write_text(paths["ids"], "".join(f"{i}\n" for i in ids))
    return paths
