"""How much would label noise hurt a model on my data? Cross-validated accuracy at injected noise rates.

:func:`noise_impact` flips a share of the labels on purpose (:func:`coreclean.simulate.noise.inject_noise`),
trains a logistic regression on the noisy labels of K-1 folds and scores it against the *given*
labels of the held-out fold, for each rate. The drop from rate 0 tells whether cleaning is worth the
effort on these embeddings: if 10% more noise costs half a point of accuracy, the noise already in
the data costs about as much. This is the seed article's recipe, on your own features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from coreclean._internal.validation import check_features, check_labels, check_random_state
from coreclean.exceptions import InputValidationError

__all__ = ["noise_impact"]


def noise_impact(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    rates: Sequence[float] = (0.0, 0.05, 0.1, 0.2),
    kind: str = "uniform",
    n_folds: int = 5,
    C: float = 0.01,
    random_state: int | np.random.Generator | None = None,
    n_threads: int | None = None,
) -> pd.DataFrame:
    """Cross-validated accuracy of a logistic regression trained with extra label noise at each rate.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        Embeddings (float32; standardised internally).
    labels : ndarray of shape (n_samples,)
        The given class indices; never modified. Held-out folds are scored against these.
    rates : sequence of float
        Shares of training labels to flip, each in [0, 1).
    kind : {"uniform", "pairs", "nearest"}
        The noise kind (see :func:`coreclean.simulate.noise.inject_noise`).
    n_folds : int
        Stratified folds; the same folds are used for every rate.
    C : float
        Inverse L2 strength of the logistic regression.
    random_state : int, Generator or None
        Seeds the folds and the flips.
    n_threads : int, optional
        Cap OpenMP/BLAS threads during the fits (1 is much faster on a busy machine).

    Returns
    -------
    pandas.DataFrame
        One row per rate: ``rate, n_flipped, accuracy, accuracy_std, accuracy_drop`` (``accuracy``
        is the mean over folds, ``accuracy_drop`` the loss against the first rate).

    Raises
    ------
    InputValidationError
        Malformed features or labels, a rate outside [0, 1), fewer than 2 folds or a class with
        fewer samples than folds.

    Examples
    --------
    >>> from sklearn.datasets import load_digits  # doctest: +SKIP
    >>> digits = load_digits()  # doctest: +SKIP
    >>> noise_impact(digits.data, digits.target, random_state=0)  # doctest: +SKIP
       rate  n_flipped  accuracy  accuracy_std  accuracy_drop
    0  0.00          0     0.95...
    """
    features = check_features(features)
    labels = check_labels(labels, features.shape[0])
    rates = [float(r) for r in rates]
    if not rates or any(not 0.0 <= r < 1.0 for r in rates):
        raise InputValidationError(f"rates must be a non-empty list of values in [0, 1); got {rates}.")
    if int(n_folds) < 2:
        raise InputValidationError(f"n_folds must be >= 2; got {n_folds}.")
    counts = np.bincount(labels)
    if counts[counts > 0].min() < n_folds:
        raise InputValidationError(
            f"every class needs at least n_folds={n_folds} samples; the smallest has {counts[counts > 0].min()}. "
            "Use fewer folds."
        )
    rng = check_random_state(random_state)
    from coreclean._internal.threads import limit_threads

    with limit_threads(n_threads):
        return _compute_noise_impact(features, labels, rates=rates, kind=kind, n_folds=int(n_folds), C=C, rng=rng)


def _compute_noise_impact(features: np.ndarray, labels: np.ndarray, *, rates: list[float], kind: str, n_folds: int,
                          C: float, rng: np.random.Generator) -> pd.DataFrame:
    from coreclean.scoring.linear.folds import make_folds
    from coreclean.scoring.linear.logistic import MultinomialLogistic
    from coreclean.simulate.noise import inject_noise
    from coreclean.scoring.linear.standardize import Standardizer

    n_classes = int(labels.max()) + 1
    folds = make_folds(labels, n_folds, random_state=rng)
    scaled = Standardizer().fit(features).transform(features)
    rows = []
    for rate in rates:
        noisy, flipped = inject_noise(labels, rate=rate, kind=kind, n_classes=n_classes, features=features,
                                      random_state=rng)
        accuracies = []
        for fold in range(n_folds):
            train, held_out = folds != fold, folds == fold
            model = MultinomialLogistic(C=C).fit(scaled[train], noisy[train])
            predicted = model.classes_[model.predict_proba(scaled[held_out]).argmax(axis=1)]
            accuracies.append(float((predicted == labels[held_out]).mean()))
        rows.append({"rate": rate, "n_flipped": int(flipped.sum()), "accuracy": float(np.mean(accuracies)),
                     "accuracy_std": float(np.std(accuracies))})
    frame = pd.DataFrame(rows)
    frame["accuracy_drop"] = frame["accuracy"].iloc[0] - frame["accuracy"]
    return frame
