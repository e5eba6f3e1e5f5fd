"""Synthetic label noise: flip labels on purpose to measure how well errors are found, or how much they hurt.

Three kinds, as in the benchmark protocols:

- ``"uniform"``: a flipped sample gets any other class, uniformly at random.
- ``"pairs"``: class-conditional pair flips; class ``c`` goes to one fixed partner ``pairs[c]``
  (by default the next class, ``(c + 1) % n_classes``).
- ``"nearest"``: instance-dependent flips toward the most similar other class, judged by a
  logistic regression fitted on the clean labels (needs ``features``), with the most confusable
  samples flipped first, which is how human labelling mistakes look.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from coreclean._internal.validation import check_features, check_labels, check_random_state
from coreclean.exceptions import InputValidationError

__all__ = ["inject_noise", "flip_pairs", "NOISE_KINDS"]

NOISE_KINDS = ("uniform", "pairs", "nearest")


def inject_noise(
    labels: np.ndarray,
    *,
    rate: float,
    kind: str = "uniform",
    n_classes: int | None = None,
    pairs: Mapping[int, int] | None = None,
    features: np.ndarray | None = None,
    random_state: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip a share ``rate`` of ``labels`` and say which ones were flipped.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Clean class indices; never modified.
    rate : float
        Share of samples to flip, in [0, 1). With ``kind="pairs"`` and explicit ``pairs``, only
        classes that have a partner are flipped, each at this rate; the pair flips number
        ``round(rate * n)`` over the ``n`` samples of those classes (see :func:`_pair_flip_counts`).
    kind : {"uniform", "pairs", "nearest"}
    n_classes : int, optional
        Number of classes (default: ``labels.max() + 1``).
    pairs : mapping of int to int, optional
        For ``kind="pairs"``: source class -> target class.
    features : ndarray of shape (n_samples, n_features), optional
        Required for ``kind="nearest"``.
    random_state : int, Generator or None

    Returns
    -------
    noisy_labels : ndarray of shape (n_samples,), int64
        A copy of ``labels`` with the flips applied.
    is_flipped : ndarray of shape (n_samples,), bool
        True where ``noisy_labels != labels``.
    """
    if not 0.0 <= rate < 1.0:
        raise InputValidationError(f"rate must be in [0, 1); got {rate}.")
    if kind not in NOISE_KINDS:
        raise InputValidationError(f"kind must be one of {NOISE_KINDS}; got {kind!r}.")
    labels = check_labels(labels, np.asarray(labels).shape[0], n_classes=n_classes)
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    if n_classes < 2:
        raise InputValidationError("label noise needs at least two classes.")
    rng = check_random_state(random_state)
    noisy = labels.copy()
    if kind == "uniform":
        flip = rng.permutation(labels.size)[: int(round(rate * labels.size))]
        shift = rng.integers(1, n_classes, size=flip.size)
        noisy[flip] = (labels[flip] + shift) % n_classes
    elif kind == "pairs":
        mapping = dict(pairs) if pairs is not None else {c: (c + 1) % n_classes for c in range(n_classes)}
        shuffled = [rng.permutation(np.flatnonzero(labels == source)) for source in mapping]
        counts = _pair_flip_counts(np.array([members.size for members in shuffled]), rate, rng)
        for target, members, count in zip(mapping.values(), shuffled, counts):
            noisy[members[:count]] = target
    else:
        noisy = _nearest_class_flips(labels, features, rate=rate, n_classes=n_classes, rng=rng)
    return noisy, noisy != labels


def _pair_flip_counts(sizes: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Flips per source class: ``rate`` of each class's ``sizes``, summing to ``round(rate * sizes.sum())``.

    Each class gets the whole part of its share; the flips left over go to classes drawn at random
    (without replacement) in proportion to their fractional parts, so the total matches the rate
    even when every class's share is below one (at 0.5 % and 1 % of 120 a class, rounding each share
    gave one flip per class for both rates).
    """
    shares = rate * sizes.astype(np.float64)
    counts = np.floor(shares + 1e-9).astype(np.int64)
    fractions = np.clip(shares - counts, 0.0, None)
    extra = min(int(round(shares.sum())) - int(counts.sum()), int(np.count_nonzero(fractions)))
    if extra > 0:
        counts[rng.choice(sizes.size, size=extra, replace=False, p=fractions / fractions.sum())] += 1
    return counts


def flip_pairs(
    labels: np.ndarray, pairs: Mapping[int, int], n_per_pair: int, *, random_state: int | np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``n_per_pair`` random samples of each source class to its target class.

    This is the P1 protocol's noise (e.g. 200 cats labelled dog). Returns ``(noisy_labels, is_flipped)``.
    """
    labels = check_labels(labels, np.asarray(labels).shape[0])
    rng = check_random_state(random_state)
    noisy = labels.copy()
    for source, target in pairs.items():
        members = np.flatnonzero(labels == source)
        if members.size < n_per_pair:
            raise InputValidationError(f"class {source} has {members.size} samples; cannot flip {n_per_pair}.")
        noisy[rng.choice(members, size=n_per_pair, replace=False)] = target
    return noisy, noisy != labels


def _nearest_class_flips(
    labels: np.ndarray, features: np.ndarray | None, *, rate: float, n_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Flip the ``rate`` most confusable samples to their most probable other class."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if features is None:
        raise InputValidationError('kind="nearest" needs features to judge which class is most similar.')
    features = check_features(features)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))
    probs = cross_val_predict(model, features, labels, cv=5, method="predict_proba")
    other = probs.copy()
    other[np.arange(labels.size), labels] = -np.inf
    target = other.argmax(axis=1)
    # Most confusable first: highest probability of the other class, ties broken at random.
    confusability = other.max(axis=1) + 1e-9 * rng.random(labels.size)
    flip = np.argsort(-confusability, kind="stable")[: int(round(rate * labels.size))]
    noisy = labels.copy()
    noisy[flip] = target[flip]
    return noisy
