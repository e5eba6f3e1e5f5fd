"""The cleaned dataset as a Hugging Face ``datasets.Dataset`` saved with ``save_to_disk``.

:func:`export_hf` writes the kept samples (weight > 0) of a cleaned table, sorted by id, with
columns ``image`` (``datasets.Image``, the file embedded), ``label`` (``ClassLabel`` over every class,
in the session's order), ``id``, ``original_label`` and ``weight``. Load it back with
``datasets.load_from_disk(OUT)``. Needs the ``hf`` extra: ``pip install 'coreclean[hf]'``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from coreclean.exceptions import ManifestError

__all__ = ["export_hf"]


def export_hf(table: pd.DataFrame, out_dir: str | os.PathLike, *, class_names: list[str]) -> Path:
    """Save the kept rows of ``table`` (``id, path, label, original_label, weight``) to ``out_dir``.

    Raises
    ------
    ImportError
        ``datasets`` is not installed (the message names the ``hf`` extra).
    ManifestError
        ``out_dir`` holds files already, or an image file is missing.
    """
    try:
        import datasets
    except ImportError as err:
        raise ImportError("--format hf needs the Hugging Face datasets package: pip install 'coreclean[hf]'") from err
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ManifestError(f"{out} is not empty; export the dataset into a new folder (--out DIR).")
    kept = table[table["weight"] > 0].sort_values("id", kind="stable")
    missing = [p for p in kept["path"] if not Path(p).is_file()]
    if missing:
        raise ManifestError(f"{len(missing)} image file(s) are missing, e.g. {missing[0]}; restore them or export "
                            "--format csv (labels only).")
    features = datasets.Features({
        "image": datasets.Image(), "label": datasets.ClassLabel(names=list(class_names)),
        "id": datasets.Value("string"), "original_label": datasets.Value("string"),
        "weight": datasets.Value("float64")})
    index = {name: k for k, name in enumerate(class_names)}
    data = datasets.Dataset.from_dict({
        "image": [str(p) for p in kept["path"]], "label": [index[str(v)] for v in kept["label"]],
        "id": [str(v) for v in kept["id"]], "original_label": [str(v) for v in kept["original_label"]],
        "weight": [float(v) for v in kept["weight"]]}, features=features)
    data.save_to_disk(str(out))
    return out
