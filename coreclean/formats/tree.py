"""A cleaned dataset to train on: a folder per class, relabelled files in their new class, dropped ones left out.

:func:`export_tree` writes ``OUT/<label>/<file>`` for every kept sample (weight > 0) of a cleaned
table, and ``OUT/manifest.csv`` with ``path`` (relative to ``OUT``), ``label``, ``id`` (the sample's
id in the session, so ``coreclean embed OUT/manifest.csv`` keeps every id), ``source``,
``original_label``, ``weight`` and ``action``.

File names: a sample keeps its file's name. Where two samples of one class folder share a name (a
relabelled ``dog/img1.jpg`` meets ``cat/img1.jpg``), *every* such file is named
``<stem>.<h><suffix>``, ``h`` the first 10 hex digits of the sha256 of its sample id: the rule
depends on nothing but the id, so the same session always gives the same tree.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import defaultdict
from pathlib import Path, PurePosixPath

import pandas as pd

from coreclean._internal.atomic import atomic_write_text
from coreclean.exceptions import ManifestError

__all__ = ["LINKS", "TREE_MANIFEST_COLUMNS", "export_tree"]

LINKS = ("copy", "hard", "symlink")
"""How files reach the tree: a copy (the default), a hard link (shares the original file: editing one edits
both), or a symbolic link to the original path."""

TREE_MANIFEST_COLUMNS = ["path", "label", "id", "source", "original_label", "weight", "action"]


def export_tree(table: pd.DataFrame, out_dir: str | os.PathLike, *, link: str = "copy") -> Path:
    """Write the kept samples of ``table`` as a folder-per-class tree into ``out_dir``; return its manifest.

    Parameters
    ----------
    table : DataFrame
        One row per sample: ``id, path`` (the image file), ``label`` (cleaned class name),
        ``original_label``, ``weight`` (0 = dropped: left out), ``action``.
    out_dir : str or os.PathLike
        A new or empty folder.
    link : {"copy", "hard", "symlink"}

    Raises
    ------
    ManifestError
        ``out_dir`` holds files already, an unknown ``link``, a missing source file, or a hard link
        across file systems (the message says to use ``--link copy``). The manifest is written last,
        so a tree without one is incomplete.
    """
    if link not in LINKS:
        raise ManifestError(f"link must be one of {list(LINKS)}; got {link!r}.")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ManifestError(f"{out} is not empty; export the tree into a new folder (--out DIR).")
    kept = table[table["weight"] > 0].sort_values("id", kind="stable")
    names = _file_names(kept)
    rows = []
    for record, name in zip(kept.itertuples(index=False), names):
        relative = PurePosixPath(_safe_folder(str(record.label))) / name
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        _place(Path(record.path), target, link)
        rows.append((str(relative), record.label, record.id, record.path, record.original_label,
                     float(record.weight), record.action))
    manifest = out / "manifest.csv"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest, pd.DataFrame(rows, columns=TREE_MANIFEST_COLUMNS).to_csv(index=False))
    return manifest


def _file_names(kept: pd.DataFrame) -> list[str]:
    """Each sample's file name in its class folder, by the collision rule of the module docstring."""
    plain = [PurePosixPath(str(path).replace(os.sep, "/")).name for path in kept["path"]]
    taken: dict[tuple[str, str], int] = defaultdict(int)
    for label, name in zip(kept["label"], plain):
        taken[(str(label), name)] += 1
    names = []
    for label, name, sample_id in zip(kept["label"], plain, kept["id"]):
        if taken[(str(label), name)] > 1:
            stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
            name = f"{stem}.{hashlib.sha256(str(sample_id).encode('utf-8')).hexdigest()[:10]}{suffix}"
        names.append(name)
    return names


def _safe_folder(label: str) -> str:
    """A class name as a folder name: path separators and leading dots cannot escape the tree."""
    cleaned = label.replace("/", "_").replace("\\", "_").strip()
    return cleaned.lstrip(".") or "_"


def _place(source: Path, target: Path, link: str) -> None:
    if not source.is_file():
        raise ManifestError(f"cannot export {source}: the file is gone; export from where the images are now.")
    if link == "copy":
        shutil.copy2(source, target)
    elif link == "hard":
        try:
            os.link(source, target)
        except OSError as err:
            raise ManifestError(f"cannot hard-link {source} into {target.parent} ({err.strerror}); "
                                "use --link copy (or --link symlink).") from err
    else:
        os.symlink(source.resolve(), target)
