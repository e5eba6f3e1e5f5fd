"""A Hugging Face dataset as a labelled image set: which rows, which images, which labels?

:func:`read_hf_dataset` opens a dataset saved with ``save_to_disk`` (a ``Dataset``, or a
``DatasetDict`` whose split is picked, ``train`` by default) or one that ``datasets.load_dataset``
loads by name or folder (the Hub, or its local cache with ``HF_HUB_OFFLINE=1``), and returns the
:class:`~coreclean.embedding.manifest.Manifest` a folder or CSV would give, so embedding, resume and
the bad-image report are the folder path's.

* Images: a ``datasets.Image`` column (by default the only one). Encoded bytes are kept in the
  cache's image store (:mod:`coreclean.embedding.image_store`) and the manifest's paths point there;
  an image the dataset holds only as a local file path is used where it is.
* Labels: a ``ClassLabel`` column (by default the only one); class names and their order are the
  feature's.
* Ids: the id column's values as text, or the row index zero-padded to the width of the last one
  (``00`` .. ``23`` for 24 rows), so the same dataset always gives the same ids in row order.
* A row with no image, an image file that is gone, no label (-1) or an empty or repeated id is left
  out and listed in ``Manifest.problems``; bytes that do not decode are reported when embedding.

The manifest's ``source`` (:func:`hf_source_id`) names the dataset, split and columns, so each such
choice gets its own embedding set and the cache's repair hint can rebuild the command.
Needs the ``hf`` extra: ``pip install 'coreclean[hf]'``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np

from coreclean.embedding.image_store import ImageStore
from coreclean.embedding.manifest import Manifest, Problem
from coreclean.exceptions import ManifestError

__all__ = ["HF_SOURCE_PREFIX", "hf_source_id", "import_datasets", "read_hf_dataset"]

logger = logging.getLogger(__name__)

HF_SOURCE_PREFIX = "hf:"
"""How the ``source`` of a Hugging Face dataset's manifest (and embedding set) starts."""

_BATCH_ROWS = 256


def import_datasets() -> Any:
    """Return the ``datasets`` module, or raise an ImportError naming the ``hf`` extra."""
    try:
        import datasets
    except ImportError as err:
        raise ImportError("Hugging Face datasets need the datasets package: pip install 'coreclean[hf]'") from err
    return datasets


def hf_source_id(where: str, *, split: str | None, image_column: str, label_column: str,
                 id_column: str | None) -> str:
    """The text naming a dataset read by :func:`read_hf_dataset`: ``hf:WHERE?split=S&image=C&label=L[&id=I]``.

    ``WHERE`` is the saved folder's absolute path or the dataset's name, percent-quoted; ``split``
    is left out for a single saved ``Dataset``.
    """
    query = {"split": split, "image": image_column, "label": label_column, "id": id_column}
    given = urlencode({name: value for name, value in query.items() if value is not None})
    return f"{HF_SOURCE_PREFIX}{quote(where, safe='/:@')}?{given}"


def read_hf_dataset(
    source: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    split: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
) -> Manifest:
    """Read a Hugging Face image classification dataset into a :class:`Manifest`.

    Parameters
    ----------
    source : str or os.PathLike
        A folder written by ``save_to_disk``, or a name or folder ``datasets.load_dataset`` accepts.
    cache_dir : str or os.PathLike
        The embedding cache; the images' bytes are kept in its ``images/`` folder.
    split : str, optional
        The split to read from a ``DatasetDict`` or a named dataset (default ``train``). A single
        saved ``Dataset`` has none.
    image_column, label_column : str, optional
        The ``datasets.Image`` and ``ClassLabel`` columns; by default the only column of that type.
    id_column : str, optional
        The column whose values are the sample ids; by default the zero-padded row index.

    Returns
    -------
    Manifest
        In row order; ``root`` is the image store, ``rows`` the dataset row of each sample.

    Raises
    ------
    ImportError
        ``datasets`` is not installed (the message names the ``hf`` extra).
    ManifestError
        The dataset cannot be loaded, the split or a column is missing or of the wrong type, or
        no row is usable.
    """
    datasets = import_datasets()
    data, where, split = _open(datasets, str(source), split)
    image_column = _pick_column(data, image_column, datasets.Image, where, "--image-column",
                                f"cast it with ds.cast_column({image_column!r}, datasets.Image())")
    label_column = _pick_column(data, label_column, datasets.ClassLabel, where, "--label-column",
                                f"make it one with ds.class_encode_column({label_column!r}), save_to_disk and "
                                "embed that")
    if id_column is not None and id_column not in data.column_names:
        raise ManifestError(f"no column {id_column!r} in {where}; its columns: {_describe_columns(data)}.")
    columns = list(dict.fromkeys(c for c in (image_column, label_column, id_column) if c is not None))
    rows = data.select_columns(columns).cast_column(image_column, datasets.Image(decode=False))
    width = len(str(max(len(data) - 1, 0)))
    ids: list[str] = []
    paths: list[Path] = []
    labels: list[int] = []
    kept_rows: list[int] = []
    problems: list[Problem] = []
    first_row_of_id: dict[str, int] = {}
    row = 0
    with ImageStore(cache_dir) as store:
        for batch in rows.iter(batch_size=_BATCH_ROWS):
            n = len(batch[image_column])
            names = batch[id_column] if id_column is not None else [f"{r:0{width}d}" for r in range(row, row + n)]
            for image, label, name in zip(batch[image_column], batch[label_column], names):
                sample_id = "" if name is None else str(name).strip()
                path, reason = None, None
                if not sample_id:
                    reason = f"empty id in column {id_column!r} on row {row}"
                elif sample_id in first_row_of_id:
                    reason = f"duplicate id {sample_id!r} on row {row} (first on row {first_row_of_id[sample_id]})"
                elif label is None or label < 0:
                    reason = f"no label on row {row}"
                else:
                    path, reason = _image_path(image, store)
                if reason is not None:
                    problems.append(Problem(sample_id or f"row {row}", str(path or ""), reason))
                else:
                    first_row_of_id[sample_id] = row
                    ids.append(sample_id)
                    paths.append(path)
                    labels.append(int(label))
                    kept_rows.append(row)
                row += 1
    source_id = hf_source_id(where, split=split, image_column=image_column, label_column=label_column,
                             id_column=id_column)
    if not ids:
        first = f"; first: {problems[0].sample_id}: {problems[0].reason}" if problems else ""
        raise ManifestError(f"no usable row in {where} ({len(problems)} skipped{first}).")
    if problems:
        logger.warning("%d row(s) of %s skipped while reading it", len(problems), where)
    logger.info("%s: %d images (%d new file(s) in %s)", source_id, len(ids), store.n_written, store.root)
    return Manifest(
        sample_ids=ids, paths=paths, labels=np.asarray(labels, dtype=np.int64),
        class_names=[str(name) for name in data.features[label_column].names], problems=problems,
        root=store.root, source=Path(source_id), rows=np.asarray(kept_rows, dtype=np.int64),
    )


def _open(datasets: Any, source: str, split: str | None) -> tuple[Any, str, str | None]:
    """(the ``Dataset``, what names it in messages and the source id, the split read or None)."""
    folder = Path(source).expanduser()
    saved = (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()
    try:
        if saved:
            where = str(folder.resolve())
            loaded = datasets.load_from_disk(where)
        else:
            where = source
            loaded = datasets.load_dataset(source, split=split or "train")
    except (OSError, ValueError) as err:
        if str(err).startswith("Unknown split"):
            raise ManifestError(f"{source} has no split {split or 'train'!r} ({err}); pick one with --split.") from err
        hint = "" if saved else ("; pass a folder written by save_to_disk, or a dataset name the Hub has (offline: "
                                 "one in the local Hugging Face cache)")
        raise ManifestError(f"cannot load the Hugging Face dataset {source} ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}){hint}.") from err
    if isinstance(loaded, datasets.DatasetDict):
        split = split or "train"
        if split not in loaded:
            raise ManifestError(f"{where} has no split {split!r}; pick one of {sorted(loaded)} with --split.")
        return loaded[split], where, split
    if saved and split is not None:
        raise ManifestError(f"{where} is a single saved Dataset with no splits; drop --split {split}.")
    return loaded, where, split if not saved else None


def _pick_column(data: Any, chosen: str | None, kind: type, where: str, option: str, fix: str) -> str:
    """``chosen`` if it is a column of feature type ``kind``, else the only such column; a clear error otherwise."""
    features = data.features
    if chosen is not None:
        if chosen not in features:
            raise ManifestError(f"no column {chosen!r} in {where}; its columns: {_describe_columns(data)}.")
        if not isinstance(features[chosen], kind):
            raise ManifestError(f"column {chosen!r} of {where} is {type(features[chosen]).__name__}, not a "
                                f"{kind.__name__}; {fix}.")
        return chosen
    found = [name for name, feature in features.items() if isinstance(feature, kind)]
    if len(found) == 1:
        return found[0]
    count = "no" if not found else f"{len(found)}"
    raise ManifestError(f"{where} has {count} {kind.__name__} column(s); name one with {option} "
                        f"(columns: {_describe_columns(data)}).")


def _describe_columns(data: Any) -> str:
    return ", ".join(f"{name} ({type(feature).__name__})" for name, feature in data.features.items())


def _image_path(image: dict[str, Any] | None, store: ImageStore) -> tuple[Path | None, str | None]:
    """(the file holding one undecoded ``datasets.Image`` value, None) or (None, why there is none)."""
    if image is None or (image.get("bytes") is None and not image.get("path")):
        return None, "no image in this row"
    if image.get("bytes") is not None:
        try:
            return store.put(image["bytes"]), None
        except OSError as err:
            return None, f"cannot store the image's bytes in {store.root}: {err}"
    path = Path(image["path"])
    if not path.is_absolute() or not path.is_file():
        return None, f"image file {image['path']} not found"
    return path, None
