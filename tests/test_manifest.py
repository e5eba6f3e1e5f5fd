"""Tests for coreclean.embedding.manifest: folder trees and CSV manifests, and every skipped-row reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import CLASS_NAMES, write_image
from coreclean import read_manifest
from coreclean.exceptions import ManifestError


def test_folder_tree_is_sorted_and_keeps_class_names(image_folder: Path) -> None:
    (image_folder / "dog" / "notes.txt").write_text("not an image")
    (image_folder / "dog" / ".hidden.png").write_bytes(b"")
    manifest = read_manifest(image_folder)
    assert manifest.class_names == list(CLASS_NAMES)
    assert len(manifest) == 12
    assert manifest.sample_ids == sorted(manifest.sample_ids)
    assert manifest.sample_ids[0] == "chat noir/img_0.png"
    assert manifest.labels.dtype == np.int64
    assert manifest.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert all(p.is_absolute() and p.is_file() for p in manifest.paths)
    assert manifest.problems == []


def test_folder_tree_walks_nested_folders(tmp_path: Path, rng: np.random.Generator) -> None:
    write_image(tmp_path / "a" / "sub" / "x.PNG", rng)
    write_image(tmp_path / "b" / "y.jpeg", rng)
    manifest = read_manifest(tmp_path)
    assert manifest.sample_ids == ["a/sub/x.PNG", "b/y.jpeg"]


def test_csv_manifest_relative_paths_ids_and_problems(image_folder: Path) -> None:
    csv = image_folder / "manifest.csv"
    csv.write_text(
        "path,label,id\n"
        "dog/img_0.png,dog,first\n"
        "dog/img_1.jpg,chat noir,second\n"
        "dog/img_0.png,dog,dup-path\n"
        "dog/img_2.png,dog,first\n"
        "dog/img_3.jpg,,empty-label\n"
        "dog/missing.png,dog,missing\n"
        ",dog,no-path\n",
        encoding="utf-8",
    )
    manifest = read_manifest(csv)
    assert manifest.sample_ids == ["first", "second"]
    assert manifest.class_names == ["chat noir", "dog"]
    assert manifest.labels.tolist() == [1, 0]
    assert manifest.rows.tolist() == [0, 1]
    reasons = {p.sample_id: p.reason for p in manifest.problems}
    assert "duplicate path" in reasons["dup-path"]
    assert "duplicate id" in reasons["first"]
    assert "empty label" in reasons["empty-label"]
    assert "file not found" in reasons["missing"]
    assert "empty path" in reasons["no-path"]


def test_csv_ids_default_to_paths_and_unknown_labels_are_reported(image_folder: Path) -> None:
    csv = image_folder / "m.csv"
    csv.write_text("path,label\ndog/img_0.png,dog\ndog/img_1.jpg,cat\n", encoding="utf-8")
    manifest = read_manifest(csv, class_names=["dog"])
    assert manifest.sample_ids == ["dog/img_0.png"]
    assert "unknown label 'cat'" in manifest.problems[0].reason


def test_integer_labels_sort_numerically(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("path,label\na.png,10\nb.png,2\n", encoding="utf-8")
    manifest = read_manifest(csv, check_files=False)
    assert manifest.class_names == ["2", "10"]
    assert manifest.labels.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda root: root / "nope", "does not exist"),
        (lambda root: root, "couldn't find any class folder"),
        (lambda root: (root / "empty_class").mkdir() or root, "no usable images"),
        (lambda root: (root / "m.csv").write_text("file,class\na.png,x\n") and root / "m.csv", r"lacks column"),
    ],
)
def test_unusable_sources_raise_one_clear_error(tmp_path: Path, setup, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        read_manifest(setup(tmp_path))
