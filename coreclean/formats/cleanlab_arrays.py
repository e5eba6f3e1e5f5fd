"""The ranker's view as the arrays cleanlab takes: labels, pred_probs and a kNN graph.

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
from coreclean.exceptions import ManifestError

__all__ = ["export_cleanlab"]


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
