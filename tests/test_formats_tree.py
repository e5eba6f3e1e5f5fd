"""`session export --format tree`: a cleaned folder-per-class tree to train on (#10)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from coreclean.exceptions import ManifestError
from coreclean.formats.tree import export_tree


def _table(tmp_path):
    files = {}
    for rel in ("cat/a.png", "dog/a.png", "dog/b.png", "cat/c.png"):
        path = tmp_path / "src" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())
        files[rel] = str(path)
    return pd.DataFrame({
        "id": list(files), "path": list(files.values()),
        "label": ["cat", "cat", "dog", "cat"],  # dog/a.png relabelled to cat: its name collides with cat/a.png
        "original_label": ["cat", "dog", "dog", "cat"],
        "weight": [1.0, 1.0, 1.0, 0.0],  # cat/c.png dropped
        "action": ["keep", "relabel", "", "drop"],
    })


def test_tree_moves_relabelled_files_leaves_dropped_out_and_names_collisions_by_id(tmp_path):
    manifest = pd.read_csv(export_tree(_table(tmp_path), tmp_path / "out"))
    assert sorted(manifest["id"]) == ["cat/a.png", "dog/a.png", "dog/b.png"]
    by_id = manifest.set_index("id")
    assert by_id.loc["dog/b.png", "path"] == "dog/b.png"
    cat_names = sorted(by_id.loc[["cat/a.png", "dog/a.png"], "path"])
    assert all(name.startswith("cat/a.") and name.endswith(".png") for name in cat_names) and len(set(cat_names)) == 2
    for row in manifest.itertuples():
        assert (tmp_path / "out" / row.path).read_bytes() == row.id.encode()  # the right bytes under each name
    again = pd.read_csv(export_tree(_table(tmp_path), tmp_path / "out2"))
    assert again["path"].tolist() == manifest["path"].tolist()  # deterministic


@pytest.mark.parametrize("link", ["hard", "symlink"])
def test_links_share_or_point_at_the_originals(tmp_path, link):
    table = _table(tmp_path)
    manifest = pd.read_csv(export_tree(table, tmp_path / "out", link=link))
    placed = tmp_path / "out" / manifest.loc[manifest["id"] == "dog/b.png", "path"].iloc[0]
    source = tmp_path / "src" / "dog" / "b.png"
    if link == "hard":
        assert os.path.samefile(placed, source) and not placed.is_symlink()
    else:
        assert placed.is_symlink() and placed.resolve() == source.resolve()


def test_a_non_empty_folder_or_a_missing_file_is_one_clear_error(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(ManifestError, match="not empty"):
        export_tree(_table(tmp_path), tmp_path / "busy")
    table = _table(tmp_path)
    os.remove(table.loc[2, "path"])
    with pytest.raises(ManifestError, match="the file is gone"):
        export_tree(table, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.csv").exists()  # no manifest: the tree says it is incomplete
