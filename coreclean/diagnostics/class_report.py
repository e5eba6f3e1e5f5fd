"""Which class should I clean first? Per-class accuracy, AUROC, most-confused partner and estimated errors.

:func:`class_report` fits the same :class:`~coreclean.scoring.ranker.LabelIssueRanker` a session
starts with, and from its class probabilities (each blind to the sample's own label) reports for
each class: its cross-validated accuracy (recall: the share of its samples predicted as it), its
one-vs-rest AUROC, the class it is most often mistaken for (the off-diagonal maximum of the
row-normalised confusion matrix) and the estimated number of label errors among its samples
(:meth:`~coreclean.scoring.ranker.LabelIssueRanker.errors_per_class`: the sum of the scores, the
number a session on the class starts from, and the one ``coreclean rank`` prints). Rows are sorted
so the first is the class to clean first: most estimated errors, then lowest AUROC.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from coreclean._internal.validation import check_features, check_labels
from coreclean._internal.threads import limit_threads
from coreclean.evaluation.auroc import auroc_per_class
from coreclean.scoring.ranker import LabelIssueRanker

__all__ = ["class_report", "class_report_from_cache", "REPORT_COLUMNS"]

REPORT_COLUMNS = ["class", "n_samples", "accuracy", "auroc", "confused_with", "confusion_rate",
                  "estimated_errors", "estimated_error_rate"]


def class_report(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: list[str] | None = None,
    n_folds: int = 5,
    C: float = 0.01,
    random_state: int | np.random.Generator | None = 0,
    n_threads: int | None = None,
    memory=None,
) -> pd.DataFrame:
    """Rank the classes by how much cleaning they need.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
        Given class indices.
    class_names : list of str, optional
        Default: ``"0"``, ``"1"``, ...
    n_folds : int
    C : float
        Inverse L2 strength of the ranker's logistic regressions on standardised features.
    random_state : int, Generator or None
        Seeds the folds.
    n_threads : int, optional
        OpenMP/BLAS threads; default: chosen from the free cores and the problem size
        (:func:`coreclean._internal.threads.limit_threads`).
    memory : str, path, joblib.Memory or None
        The ranker's cache of label-blind work (see :class:`LabelIssueRanker`).

    Returns
    -------
    pandas.DataFrame
        Columns ``class, n_samples, accuracy, auroc, confused_with, confusion_rate,
        estimated_errors, estimated_error_rate``, one row per class, the class to clean first on top.

    Examples
    --------
    >>> emb = coreclean.load_embeddings("cache/")  # doctest: +SKIP
    >>> class_report(emb.features, emb.labels, class_names=emb.class_names).head(3)  # doctest: +SKIP
    """
    features = check_features(features) if not isinstance(features, np.memmap) else features
    n_classes = len(class_names) if class_names is not None else None
    labels = check_labels(labels, features.shape[0], n_classes=n_classes)
    n_classes = n_classes if n_classes is not None else int(labels.max()) + 1
    names = list(class_names) if class_names is not None else [str(k) for k in range(n_classes)]
    with limit_threads(n_threads, n_samples=features.shape[0], n_features=features.shape[1]):
        ranker = LabelIssueRanker(n_folds=n_folds, C=C, random_state=random_state, memory=memory).fit(
            features, labels, n_classes=n_classes)
    return _compute_report(ranker.probs_.astype(np.float64), labels, names, ranker.errors_per_class())


def _compute_report(probs: np.ndarray, labels: np.ndarray, names: list[str], errors: np.ndarray) -> pd.DataFrame:
    n_classes = len(names)
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(confusion, (labels, predicted), 1.0)
    counts = confusion.sum(axis=1)
    normalised = confusion / np.maximum(counts, 1.0)[:, None]
    off = normalised.copy()
    np.fill_diagonal(off, -1.0)
    partner = off.argmax(axis=1)
    frame = pd.DataFrame({
        "class": names,
        "n_samples": counts.astype(np.int64),
        "accuracy": np.where(counts > 0, np.diag(normalised), np.nan),
        "auroc": auroc_per_class(probs, labels),
        "confused_with": [names[p] if n_classes > 1 else "" for p in partner],
        "confusion_rate": off[np.arange(n_classes), partner].clip(min=0.0),
        "estimated_errors": errors,
        "estimated_error_rate": np.where(counts > 0, errors / np.maximum(counts, 1.0), np.nan),
    })
    order = np.lexsort((frame["auroc"].fillna(1.0).to_numpy(), -frame["estimated_errors"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)[REPORT_COLUMNS]


def class_report_from_cache(cache_dir: str | os.PathLike, *, key: str | None = None, n_folds: int = 5, C: float = 0.01,
                            random_state: int | np.random.Generator | None = 0,
                            n_threads: int | None = None) -> pd.DataFrame:
    """:func:`class_report` of the embedding set in ``cache_dir`` (the most recent one, or ``key``)."""
    from coreclean.embedding.cache import derived_dir, load_embeddings, read_cache_info

    key = read_cache_info(cache_dir, key=key)["key"]
    embeddings = load_embeddings(cache_dir, key=key)
    return class_report(embeddings.features, embeddings.labels, class_names=embeddings.class_names,
                        n_folds=n_folds, C=C, random_state=random_state, n_threads=n_threads,
                        memory=str(derived_dir(cache_dir, key)))
