"""Tests for coreclean.embedding.cache: reading sets back, the sidecar, and bring-your-own features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coreclean import embed_dataset, load_embeddings, read_samples
from coreclean.embedding.cache import list_embedding_sets, read_cache_info
from coreclean.embedding.own_features import write_feature_cache
from coreclean.exceptions import CacheError, InputValidationError, ManifestError


@pytest.fixture
def embedded(image_folder: Path, tmp_path: Path, tiny_embed_options: dict) -> Path:
    cache = tmp_path / "cache"
    embed_dataset(image_folder, cache, **tiny_embed_options)
    return cache


def test_load_embeddings_is_a_memmap_in_sample_order(embedded: Path, image_folder: Path) -> None:
    emb = load_embeddings(embedded)
    assert isinstance(emb.features, np.memmap) and emb.features.dtype == np.float32
    assert emb.labels.dtype == np.int64 and emb.sample_ids.dtype == object
    samples = read_samples(embedded)
    assert list(samples.columns) == ["id", "path", "sha256", "label", "label_name"]
    assert samples["id"].tolist() == list(emb.sample_ids)
    assert samples["label"].tolist() == emb.labels.tolist()
    assert samples["label_name"].tolist() == [emb.class_names[k] for k in emb.labels]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in samples["path"])
    assert samples["sha256"].str.len().eq(64).all()
    assert np.load(embedded / "embeddings" / list_embedding_sets(embedded)[0] / "features.npy", mmap_mode="r").shape == (12, 512)


def test_sidecar_records_settings_versions_and_fingerprint(embedded: Path, image_folder: Path) -> None:
    info = read_cache_info(embedded)
    for field in ("backbone", "weights", "transform", "image_size", "precision", "dim", "n_samples",
                  "torch_version", "torchvision_version", "class_names", "source", "fingerprint", "key"):
        assert field in info, field
    assert info["backbone"] == "resnet18" and info["weights"] == "none" and info["precision"] == "fp32"
    assert info["dim"] == 512 and info["n_samples"] == 12 and info["image_size"] == 32
    assert info["transform"].startswith("Preprocess(") and info["source"] == str(image_folder.resolve())
    assert info["class_names"] == ["chat noir", "dog", "ünï cødé"]


def test_fingerprint_is_stable_and_tracks_content(embedded: Path, image_folder: Path, tiny_embed_options: dict) -> None:
    before = read_cache_info(embedded)["fingerprint"]
    embed_dataset(image_folder, embedded, **tiny_embed_options)
    assert read_cache_info(embedded)["fingerprint"] == before
    (image_folder / "dog" / "img_0.png").unlink()
    embed_dataset(image_folder, embedded, **tiny_embed_options)
    assert read_cache_info(embedded)["fingerprint"] != before
    assert load_embeddings(embedded).features.shape[0] == 11


def test_missing_cache_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="coreclean embed"):
        load_embeddings(tmp_path)
    with pytest.raises(CacheError, match="no finished embedding set 'nope'"):
        read_samples(tmp_path, key="nope")


def test_bring_your_own_features(tmp_path: Path, rng: np.random.Generator) -> None:
    features = rng.normal(size=(5, 3)).astype(np.float64)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,label,id\nimgs/a.jpg,cat,a\nimgs/b.jpg,dog,b\nimgs/c.jpg,,c\nimgs/a.jpg,cat,a2\nimgs/e.jpg,dog,e\n",
        encoding="utf-8",
    )
    key = write_feature_cache(tmp_path / "cache", features, manifest, name="clip")
    emb = load_embeddings(tmp_path / "cache", key=key)
    assert key.startswith("clip-")
    assert list(emb.sample_ids) == ["a", "b", "e"]
    np.testing.assert_allclose(emb.features, features[[0, 1, 4]].astype(np.float32))
    assert emb.class_names == ["cat", "dog"] and emb.labels.tolist() == [0, 1, 1]
    errors = pd.read_csv(tmp_path / "cache" / "errors.csv")
    assert sorted(errors["id"]) == ["a2", "c"]
    samples = read_samples(tmp_path / "cache")
    assert samples["path"].iloc[0] == str(tmp_path / "imgs" / "a.jpg")
    assert json.loads((tmp_path / "cache" / "embeddings" / key / "info.json").read_text())["dim"] == 3


def test_bring_your_own_features_from_files_and_frames(tmp_path: Path, rng: np.random.Generator) -> None:
    np.save(tmp_path / "x.npy", rng.normal(size=(2, 4)).astype(np.float32))
    frame = pd.DataFrame({"path": ["a.png", "b.png"], "label": ["x", "y"]})
    key = write_feature_cache(tmp_path / "cache", tmp_path / "x.npy", frame)
    assert load_embeddings(tmp_path / "cache", key=key).features.shape == (2, 4)


@pytest.mark.parametrize(
    ("features", "match"),
    [
        (np.array([[0.0, 1.0], [np.nan, 1.0], [1.0, 1.0]]), "NaN or infinite"),
        (np.zeros((2, 2)), "has 3 data rows"),
        (np.zeros(3), "2-D"),
    ],
)
def test_bring_your_own_features_are_validated(tmp_path: Path, features: np.ndarray, match: str) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na,x\nb,y\nc,x\n", encoding="utf-8")
    with pytest.raises(InputValidationError, match=match):
        write_feature_cache(tmp_path / "cache", features, manifest)
    assert not list((tmp_path).glob("cache/embeddings/*/info.json"))


def test_bring_your_own_manifest_without_labels_column(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path\na\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="lacks column"):
        write_feature_cache(tmp_path / "cache", np.zeros((1, 2)), tmp_path / "m.csv")
