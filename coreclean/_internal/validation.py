"""Input checks shared by every public function: validate once at the boundary, then trust."""

from __future__ import annotations

import numbers

import numpy as np

from coreclean.exceptions import InputValidationError

__all__ = ["is_utf8", "read_npy", "check_features", "check_labels", "check_sample_weight", "check_pred_probs", "check_random_state",
           "sklearn_seed"]

#: How far a row of predicted probabilities may sum from 1 (float32 rounding, softmax in low precision).
PROB_SUM_TOLERANCE = 1e-3


def read_npy(path, *, ndim: int, holds: str) -> np.ndarray:
    """The ``ndim``-D array saved at ``path`` with ``numpy.save``; one clear error when unreadable or of other rank.

    ``holds`` says what the array should be, for the error (e.g. ``"labels"``, ``"(n_samples, n_classes)"``).
    """
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputValidationError(f"cannot read {path} as a .npy array: {err}; save it with numpy.save.") from err
    if array.ndim != ndim:
        raise InputValidationError(f"{path} must hold a {ndim}-D array {holds}; got shape {array.shape}.")
    return array


def check_features(features: object, *, name: str = "features") -> np.ndarray:
    """Return ``features`` as a C-contiguous float32 (n_samples, n_features) array.

    Raises
    ------
    InputValidationError
        If it is not 2-D, is empty, or holds NaN or infinite values (the message names the first bad rows).
    """
    array = np.asarray(features)
    if array.ndim != 2:
        raise InputValidationError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); got shape {array.shape}. "
            "Reshape a single sample with features.reshape(1, -1)."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputValidationError(f"{name} is empty (shape {array.shape}).")
    if not np.issubdtype(array.dtype, np.number):
        raise InputValidationError(f"{name} must be numeric; got dtype {array.dtype}.")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = _finite_rows(array)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InputValidationError(
            f"{name} has {bad.size} row(s) with NaN or infinite values (first: {bad[:5].tolist()}). "
            "Drop or re-embed those samples before scoring."
        )
    return array


def _finite_rows(array: np.ndarray, chunk_rows: int = 65536) -> np.ndarray:
    """Row-wise ``isfinite().all()`` in chunks, so a large memmap never needs a full boolean copy."""
    out = np.empty(array.shape[0], dtype=bool)
    for start in range(0, array.shape[0], chunk_rows):
        out[start : start + chunk_rows] = np.isfinite(array[start : start + chunk_rows]).all(axis=1)
    return out


def check_labels(labels: object, n_samples: int, *, n_classes: int | None = None) -> np.ndarray:
    """Return ``labels`` as an int64 (n_samples,) array of class indices in ``0..n_classes-1``.

    Raises
    ------
    InputValidationError
        On a length mismatch, non-integer values, negative labels, or a label >= ``n_classes``
        (a label never seen among the class names).
    """
    array = np.asarray(labels)
    if array.ndim != 1:
        raise InputValidationError(f"labels must be 1-D; got shape {array.shape}.")
    if array.shape[0] != n_samples:
        raise InputValidationError(
            f"labels has {array.shape[0]} entries but features has {n_samples} rows; they must match one to one."
        )
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise InputValidationError("labels must be integer class indices; got non-integer floats.")
    elif array.dtype.kind not in "iub":
        raise InputValidationError(
            f"labels must be integer class indices 0..n_classes-1; got dtype {array.dtype}. "
            "Map class names to indices first (see coreclean.load_embeddings)."
        )
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise InputValidationError(f"labels must be >= 0; found {int(array.min())}.")
    if n_classes is not None and array.size and array.max() >= n_classes:
        raise InputValidationError(
            f"label {int(array.max())} is not a known class: only {n_classes} classes (0..{n_classes - 1})."
        )
    return array


def check_sample_weight(sample_weight: object | None, n_samples: int) -> np.ndarray:
    """Return non-negative float64 weights of length ``n_samples`` (all ones when None)."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=np.float64)
    array = np.asarray(sample_weight, dtype=np.float64)
    if array.shape != (n_samples,):
        raise InputValidationError(f"sample_weight must have shape ({n_samples},); got {array.shape}.")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise InputValidationError("sample_weight must be finite and >= 0 (0 drops a sample).")
    return array


def check_pred_probs(pred_probs: object, n_samples: int, n_classes: int | None = None) -> np.ndarray:
    """Return out-of-sample class probabilities as a float64 (n_samples, n_classes) array, rows summing to 1.

    ``n_classes=None`` takes the number of columns as the number of classes (cleanlab's convention).

    Raises
    ------
    InputValidationError
        Wrong shape (rows must match the labels, columns the classes), NaN or infinite values,
        negative values, or rows summing to more than ``PROB_SUM_TOLERANCE`` away from 1 (the message
        counts them and names the first).
    """
    array = np.asarray(pred_probs)
    expected = f"({n_samples}, {n_classes if n_classes is not None else 'n_classes'})"
    if array.ndim != 2 or array.shape[0] != n_samples or (n_classes is not None and array.shape[1] != n_classes):
        raise InputValidationError(
            f"pred_probs must have shape {expected}: one row per label, one column per class; got shape "
            f"{array.shape}."
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputValidationError(f"pred_probs must be real numbers; got dtype {array.dtype}.")
    array = np.asarray(array, dtype=np.float64)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InputValidationError(f"pred_probs has {bad.size} row(s) with NaN or infinite values (first: row "
                                   f"{int(bad[0])}).")
    negative = (array < 0).any(axis=1)
    if negative.any():
        bad = np.flatnonzero(negative)
        raise InputValidationError(f"pred_probs has {bad.size} row(s) with negative values (first: row "
                                   f"{int(bad[0])}); pass probabilities, not logits (apply a softmax).")
    sums = array.sum(axis=1)
    off = np.abs(sums - 1.0) > PROB_SUM_TOLERANCE
    if off.any():
        first = int(np.flatnonzero(off)[0])
        raise InputValidationError(
            f"pred_probs has {int(off.sum())} row(s) not summing to 1 within {PROB_SUM_TOLERANCE:g} (first: row "
            f"{first}, sum {sums[first]:.6g}); pass one probability per class in each row (apply a softmax)."
        )
    return array


def check_random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Turn ``random_state`` (None, an int or a Generator) into a ``np.random.Generator``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    raise InputValidationError(
        f"random_state must be None, an int or a numpy Generator; got {type(random_state).__name__}."
    )


def sklearn_seed(rng: np.random.Generator) -> int:
    """Draw an int seed from ``rng`` for scikit-learn, which accepts no Generator."""
    return int(rng.integers(0, 2**31 - 1))


def is_utf8(text: str) -> bool:
    """True when ``text`` encodes as UTF-8 (a file name decoded with surrogate escapes does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
