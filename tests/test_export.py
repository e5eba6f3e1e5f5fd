"""Exporting a session and carrying its label patch back to the original dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_feature_cache as make_cache
from PIL import Image

import coreclean
from coreclean.embedding.own_features import write_feature_cache
from coreclean.exceptions import ManifestError
from coreclean.sessions.export import (
    apply_label_patch,
    read_label_patch,
    write_manifest,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_patch_round_trip_with_drops_and_downweights(tmp_path):
    cache, manifest, true, noisy = make_cache(tmp_path, n_per_class=40)
    with coreclean.CleaningSession.start(cache, tmp_path / "s.session", classes=["cat"], batch_size=6,
                                         evaluate=False) as session:
        batch = session.next_batch()
        session.decide(batch["id"][0], "relabel", new_label="dog")
        session.decide(batch["id"][1], "drop")
        session.decide(batch["id"][2], "downweight", weight=0.3)
        session.decide(batch["id"][3], "keep")
        session.decide(batch["id"][4], "skip")
        paths = session.export(tmp_path / "out")  # the open round's decisions count too
        labels, weights = session.labels, session.weights
    patch = read_label_patch(paths["patch"])
    assert sorted(patch["action"]) == ["downweight", "drop", "relabel"]
    cleaned = apply_label_patch(manifest, patch, drop_zero_weight=False)
    assert cleaned["label"].tolist() == [["cat", "dog", "fox"][k] for k in labels]
    assert np.allclose(cleaned["weight"], weights)
    dropped = apply_label_patch(manifest, paths["patch"])
    assert len(dropped) == len(labels) - 1 and batch["id"][1] not in set(dropped["id"])
    # the written manifest reads back as a dataset with the cleaned labels
    back = write_manifest(cleaned.drop(columns="weight"), tmp_path / "clean.csv")
    assert pd.read_csv(back)["label"].tolist() == cleaned["label"].tolist()
    decisions = pd.read_csv(paths["decisions"])
    assert len(decisions) == 5 and set(pd.read_csv(paths["labels"]).columns) >= {"id", "label", "original_label",
                                                                                  "weight", "changed"}


def test_patch_on_a_folder_dataset_and_stale_patches(tmp_path):
    root = tmp_path / "data"
    for name in ("a", "b"):
        for i in range(3):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4)).save(root / name / f"{i}.png")
    patch = pd.DataFrame({"id": ["a/1.png"], "path": [""], "old_label": ["a"], "new_label": ["b"], "weight": [1.0],
                          "action": ["relabel"]})
    cleaned = apply_label_patch(root, patch)
    assert cleaned.set_index("id").loc["a/1.png", "label"] == "b"
    assert "weight" not in cleaned.columns
    with pytest.raises(ManifestError, match="not 'b'"):
        apply_label_patch(root, patch.assign(old_label="b"))
    with pytest.raises(ManifestError, match="not in"):
        apply_label_patch(root, patch.assign(id="c/9.png"))


def test_ids_from_a_manifest_with_an_id_column(tmp_path):
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"id": ["x", "y", "z", "w"], "path": ["1.png", "2.png", "3.png", "4.png"],
                  "label": ["a", "b", "a", "b"]}).to_csv(manifest, index=False)
    write_feature_cache(tmp_path / "cache", np.eye(4, dtype=np.float32), manifest)
    patch = pd.DataFrame({"id": ["z"], "path": [""], "old_label": ["a"], "new_label": ["b"], "weight": [1.0],
                          "action": ["relabel"]})
    assert apply_label_patch(manifest, patch)["label"].tolist() == ["a", "b", "b", "b"]
