"""Which images make up the dataset, and what is each one's label?

A dataset is either a folder-per-class tree (torchvision's ``ImageFolder`` convention,
``ROOT/<class name>/<...>/<image>``) or a CSV manifest with columns ``path,label`` and an optional
``id`` (paths relative to the manifest's folder). :func:`read_manifest` turns either into a
:class:`Manifest`: sorted, deterministic, with every row it had to drop listed in
``Manifest.problems`` rather than raised, so one bad row never stops a run.

Rules a dataset is read by:

* CSV labels are stripped of surrounding whitespace (``" a "`` is class ``a``); otherwise labels
  are compared as text, so ``09`` and ``9`` are two classes. Folder names are used exactly.
* Symlinks are followed, each real file is a sample once: a file reached again through a link is
  skipped and listed as a problem, and a linked folder already walked (a loop) is skipped, with one
  warning line.
* A file whose name is not valid UTF-8 is skipped and listed as a problem (rename it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from coreclean._internal.validation import is_utf8
from coreclean.exceptions import ManifestError

__all__ = ["IMG_EXTENSIONS", "Manifest", "Problem", "read_manifest", "manifest_from_frame"]

logger = logging.getLogger(__name__)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""File extensions treated as images in a folder tree (torchvision's ``IMG_EXTENSIONS``)."""


@dataclass(frozen=True)
class Problem:
    """One input sample that was skipped, and why."""

    sample_id: str
    path: str
    reason: str


@dataclass(frozen=True)
class Manifest:
    """A labelled image set, in a fixed order.

    Attributes
    ----------
    sample_ids : list of str
        Unique id per sample: the path relative to ``root`` (POSIX separators) or the CSV ``id``
        (for a Hugging Face dataset, see :mod:`coreclean.formats.hf_source`).
    paths : list of Path
        Absolute path of each sample's file. Several samples may share one file only where a
        dataset holds the same image bytes twice (a Hugging Face dataset's image store).
    labels : np.ndarray
        ``(n_samples,)`` int64 class indices into ``class_names``.
    class_names : list of str
        Class names exactly as given (folder names or CSV labels), sorted; a Hugging Face
        ``ClassLabel``'s names in its own order.
    problems : list of Problem
        Rows or files that were skipped (duplicate, missing, empty label, ...).
    root : Path
        The dataset folder, the folder holding the CSV manifest, or the cache's image store.
    source : Path
        What was read: the folder, the CSV file, or a Hugging Face dataset's ``hf:...`` name.
    rows : np.ndarray
        ``(n_samples,)`` int64 position of each sample among the manifest's data rows (for a folder,
        its position in discovery order). Lets callers align per-row data such as user features.
    """

    sample_ids: list[str]
    paths: list[Path]
    labels: np.ndarray
    class_names: list[str]
    problems: list[Problem] = field(default_factory=list)
    root: Path = Path(".")
    source: Path = Path(".")
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.sample_ids)


def read_manifest(
    source: str | os.PathLike,
    *,
    extensions: Sequence[str] | None = IMG_EXTENSIONS,
    is_valid_file: Callable[[str], bool] | None = None,
    check_files: bool = True,
    class_names: Sequence[str] | None = None,
) -> Manifest:
    """Read a folder-per-class tree or a CSV manifest into a :class:`Manifest`.

    Parameters
    ----------
    source : str or os.PathLike
        A folder with one sub-folder per class, or a ``.csv`` file with columns ``path,label``
        and optionally ``id``.
    extensions : sequence of str, optional
        In a folder tree, only files ending in one of these (case-insensitive) are samples.
        Ignored for CSV manifests, which list their files explicitly.
    is_valid_file : callable, optional
        In a folder tree, a predicate on the path replacing the extension check (as torchvision).
    check_files : bool
        For a CSV, report rows whose file does not exist as problems. Turn off when the paths are
        only names (bring-your-own features).
    class_names : sequence of str, optional
        The allowed classes, in label order. Labels outside it are reported as problems. By default
        the sorted distinct labels (folder names, or CSV labels; numerically if all are integers).

    Returns
    -------
    Manifest
        Samples sorted by path within each class for folders, in row order for CSVs.

    Raises
    ------
    ManifestError
        If ``source`` does not exist, a CSV lacks the ``path``/``label`` columns, a folder has no
        class sub-folder, or no usable sample remains.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise ManifestError(
            f"dataset source {source} does not exist; pass a folder with one sub-folder per class "
            "or a CSV manifest with columns path,label."
        )
    if source.is_dir():
        if extensions is not None and is_valid_file is not None:
            raise ManifestError("pass either extensions or is_valid_file, not both.")
        manifest = _read_folder(source.resolve(), extensions, is_valid_file, class_names)
    else:
        frame = _read_csv(source)
        manifest = manifest_from_frame(
            frame, root=source.resolve().parent, source=source.resolve(), check_files=check_files,
            class_names=class_names,
        )
    _log_problems(manifest)
    return manifest


def manifest_from_frame(
    frame: pd.DataFrame,
    *,
    root: str | os.PathLike,
    source: str | os.PathLike | None = None,
    check_files: bool = True,
    class_names: Sequence[str] | None = None,
) -> Manifest:
    """Build a :class:`Manifest` from a table with columns ``path``, ``label`` and optionally ``id``.

    Relative paths are resolved against ``root``. Rows with an empty path or label, a label not in
    ``class_names``, a path or id seen on an earlier row, or (with ``check_files``) a missing file
    are left out and listed in ``problems`` with their reason.

    Raises
    ------
    ManifestError
        If a required column is missing or no usable row remains.
    """
    root = Path(root)
    source = Path(source) if source is not None else root
    columns = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        raise ManifestError(
            f"manifest {source} lacks column(s) {missing}; it needs a header row with path,label "
            f"(and optionally id); found columns {list(frame.columns)}."
        )
    raw_paths = frame[columns["path"]].fillna("").astype(str).tolist()
    raw_labels = [label.strip() for label in frame[columns["label"]].fillna("").astype(str)]
    raw_ids = frame[columns["id"]].fillna("").astype(str).tolist() if "id" in columns else None

    if class_names is None:
        class_names = _sorted_class_names({lab for lab in raw_labels if lab})
    class_names = [str(name).strip() for name in class_names]
    class_index = {name: i for i, name in enumerate(class_names)}

    problems: list[Problem] = []
    ids: list[str] = []
    paths: list[Path] = []
    labels: list[int] = []
    rows: list[int] = []
    first_path: dict[Path, int] = {}
    first_id: dict[str, int] = {}
    for row, raw_path in enumerate(raw_paths):
        line = row + 2  # header is line 1
        raw_id = raw_ids[row].strip() if raw_ids is not None else ""
        sample_id = raw_id or _id_from_path(raw_path.strip())
        label = raw_labels[row]
        if not raw_path.strip():
            problems.append(Problem(sample_id, "", f"empty path on line {line}"))
            continue
        path = Path(os.path.normpath(root / raw_path.strip()))
        reason = None
        if not label:
            reason = f"empty label on line {line}"
        elif label not in class_index:
            reason = f"unknown label {label!r} on line {line} (known classes: {class_names[:10]})"
        elif path in first_path:
            reason = f"duplicate path on line {line} (first on line {first_path[path]})"
        elif sample_id in first_id:
            reason = f"duplicate id {sample_id!r} on line {line} (first on line {first_id[sample_id]})"
        elif check_files and not path.is_file():
            reason = f"file not found (line {line})"
        if reason is not None:
            problems.append(Problem(sample_id, str(path), reason))
            continue
        first_path[path] = line
        first_id[sample_id] = line
        ids.append(sample_id)
        paths.append(path)
        labels.append(class_index[label])
        rows.append(row)
    manifest = Manifest(
        sample_ids=ids,
        paths=paths,
        labels=np.asarray(labels, dtype=np.int64),
        class_names=class_names,
        problems=problems,
        root=root,
        source=source,
        rows=np.asarray(rows, dtype=np.int64),
    )
    _check_not_empty(manifest)
    return manifest


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise ManifestError(
            f"cannot read manifest {path} as a UTF-8 CSV with a header row path,label[,id]: {err}"
        ) from err


def _read_folder(
    root: Path,
    extensions: Sequence[str] | None,
    is_valid_file: Callable[[str], bool] | None,
    class_names: Sequence[str] | None,
) -> Manifest:
    found = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    unnamed = [name for name in found if not is_utf8(name)]
    if unnamed:
        logger.warning("skipped %d class folder(s) whose name is not valid UTF-8 (rename them), first: %s",
                       len(unnamed), _printable(unnamed[0]))
        found = [name for name in found if is_utf8(name)]
    if not found:
        raise ManifestError(
            f"couldn't find any class folder in {root}; expected {root}/<class name>/<image files>, "
            "or pass a CSV manifest with columns path,label."
        )
    names = list(class_names) if class_names is not None else found
    class_index = {name: i for i, name in enumerate(names)}
    if is_valid_file is None:
        suffixes = tuple(ext.lower() for ext in (extensions or IMG_EXTENSIONS))

        def is_valid_file(name: str) -> bool:
            return name.lower().endswith(suffixes)

    problems: list[Problem] = []
    ids: list[str] = []
    paths: list[Path] = []
    labels: list[int] = []
    n_ignored = 0
    walked: dict[str, str] = {os.path.realpath(root): str(root)}
    skipped_folders: list[tuple[str, str]] = []
    first_of_file: dict[str, str] = {}
    for folder in found:
        for path, real in _walk_files(root / folder, walked, skipped_folders):
            sample_id = path.relative_to(root).as_posix()
            if not is_valid_file(str(path)):
                n_ignored += 1
                continue
            if not is_utf8(sample_id):
                problems.append(Problem(_printable(sample_id), _printable(str(path)),
                                        "file name is not valid UTF-8; rename the file to embed it"))
                continue
            if folder not in class_index:
                problems.append(Problem(sample_id, str(path), f"unknown label {folder!r} (folder not a known class)"))
                continue
            if real in first_of_file:
                problems.append(Problem(sample_id, str(path), f"same file as {first_of_file[real]!r} "
                                                              "(reached again through a symlink)"))
                continue
            first_of_file[real] = sample_id
            ids.append(sample_id)
            paths.append(path)
            labels.append(class_index[folder])
    if skipped_folders:
        link, target = skipped_folders[0]
        logger.warning("skipped %d symlinked folder(s) already walked (a loop or a second link), first: %s -> %s",
                       len(skipped_folders), link, target)
    if n_ignored:
        logger.info("ignored %d file(s) in %s without an image extension", n_ignored, root)
    empty = sorted(set(names) - {names[i] for i in set(labels)})
    if empty:
        logger.warning("class folder(s) with no images: %s", empty[:10])
    manifest = Manifest(
        sample_ids=ids,
        paths=paths,
        labels=np.asarray(labels, dtype=np.int64),
        class_names=names,
        problems=problems,
        root=root,
        source=root,
        rows=np.arange(len(ids), dtype=np.int64),
    )
    _check_not_empty(manifest)
    return manifest


def _walk_files(
    top: Path, walked: dict[str, str], skipped_folders: list[tuple[str, str]]
) -> list[tuple[Path, str]]:
    """``(path, real path)`` of every non-hidden file under ``top``, sorted by path.

    Symlinks are followed, but a folder whose real path is in ``walked`` (real path -> the path it
    was first reached by) is not entered again: it is appended to ``skipped_folders``. So loops end
    and no folder is walked twice.
    """
    real_top = os.path.realpath(top)
    if real_top in walked:
        skipped_folders.append((str(top), walked[real_top]))
        return []
    walked[real_top] = str(top)
    found: list[tuple[Path, str]] = []
    stack = [(str(top), real_top)]
    while stack:
        folder, real_folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as err:
            logger.warning("cannot list %s (%s); its files are left out", folder, err)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            real = os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(real_folder, entry.name)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if not is_dir:
                found.append((Path(entry.path), real))
            elif real in walked:
                skipped_folders.append((entry.path, walked[real]))
            else:
                walked[real] = entry.path
                stack.append((entry.path, real))
    found.sort()
    return found



def _printable(text: str) -> str:
    """``text`` with undecodable bytes of a file name shown as ``\\xNN`` escapes."""
    return os.fsencode(text).decode("utf-8", errors="backslashreplace")


def _sorted_class_names(labels: set[str]) -> list[str]:
    try:
        return sorted(labels, key=lambda label: (int(label), label))  # "09" and "9": two classes, fixed order
    except ValueError:
        return sorted(labels)


def _id_from_path(raw_path: str) -> str:
    return PurePosixPath(raw_path.replace("\\", "/")).as_posix() if raw_path else ""


def _check_not_empty(manifest: Manifest) -> None:
    if len(manifest) == 0:
        detail = ""
        if manifest.problems:
            first = manifest.problems[0]
            detail = f" ({len(manifest.problems)} row(s) skipped, first: {first.sample_id}: {first.reason})"
        raise ManifestError(f"no usable images in {manifest.source}{detail}; check the path and its layout.")


def _log_problems(manifest: Manifest) -> None:
    if manifest.problems:
        logger.warning("%d sample(s) in %s skipped while reading it", len(manifest.problems), manifest.source)
        for problem in manifest.problems[:5]:
            logger.debug("  %s: %s", problem.sample_id, problem.reason)
