"""Tests for coreclean.embedding.embed and coreclean.embedding.backbones: determinism, cache reuse, resume, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import SHARED_DIR, write_image
from coreclean import embed_dataset, load_embeddings, read_samples
from coreclean.embedding.backbones import build_feature_extractor, default_preprocess
from coreclean.embedding.cache import ChunkStore, list_embedding_sets
from coreclean.exceptions import CacheError, ManifestError, WeightsError

MOBILENET_TRUNK = SHARED_DIR / "weights" / "mobilenet_v2_imagenet_features_torchvision.pth"


def test_embedding_is_deterministic_and_complete(image_folder: Path, tmp_path: Path, tiny_embed_options: dict) -> None:
    first = embed_dataset(image_folder, tmp_path / "c1", **tiny_embed_options)
    second = embed_dataset(image_folder, tmp_path / "c2", **tiny_embed_options)
    a, b = load_embeddings(tmp_path / "c1"), load_embeddings(tmp_path / "c2")
    assert first.n_samples == first.n_computed == 12 and first.n_skipped == 0
    assert a.features.shape == (12, 512) and a.features.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(a.features), np.asarray(b.features))
    assert list(a.sample_ids) == list(b.sample_ids)
    assert second.key == first.key


def test_second_run_computes_nothing(image_folder: Path, tmp_path: Path, tiny_embed_options: dict) -> None:
    embed_dataset(image_folder, tmp_path / "c", **tiny_embed_options)
    again = embed_dataset(image_folder, tmp_path / "c", **tiny_embed_options)
    assert again.n_computed == 0 and again.n_samples == 12


def test_renamed_file_is_reused_and_changed_file_recomputed(
    image_folder: Path, tmp_path: Path, tiny_embed_options: dict, rng: np.random.Generator
) -> None:
    cache = tmp_path / "c"
    embed_dataset(image_folder, cache, **tiny_embed_options)
    before = load_embeddings(cache)
    old_vector = np.asarray(before.features[list(before.sample_ids).index("dog/img_0.png")])
    (image_folder / "dog" / "img_0.png").rename(image_folder / "dog" / "renamed.png")
    renamed = embed_dataset(image_folder, cache, **tiny_embed_options)
    assert renamed.n_computed == 0
    after = load_embeddings(cache)
    np.testing.assert_array_equal(after.features[list(after.sample_ids).index("dog/renamed.png")], old_vector)

    write_image(image_folder / "dog" / "renamed.png", rng, size=10)
    changed = embed_dataset(image_folder, cache, **tiny_embed_options)
    assert changed.n_computed == 1


def test_resume_after_a_crash_computes_only_the_rest(
    image_folder: Path, tmp_path: Path, tiny_embed_options: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {**tiny_embed_options, "chunk_size": 4}
    reference = embed_dataset(image_folder, tmp_path / "ref", **options)
    real_commit = ChunkStore.commit
    calls = {"n": 0}

    def crash_after_first(self, *args, **kwargs):
        if calls["n"] == 1:
            raise KeyboardInterrupt("simulated kill")
        calls["n"] += 1
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(ChunkStore, "commit", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(image_folder, tmp_path / "c", **options)
    monkeypatch.setattr(ChunkStore, "commit", real_commit)
    assert list_embedding_sets(tmp_path / "c") == []  # nothing published from a half run
    assert not list((tmp_path / "c").rglob(".*tmp*"))  # no temp file left behind

    resumed = embed_dataset(image_folder, tmp_path / "c", **options)
    assert resumed.n_computed == 12 - 4
    np.testing.assert_array_equal(
        np.asarray(load_embeddings(tmp_path / "c").features), np.asarray(load_embeddings(tmp_path / "ref").features)
    )
    assert resumed.key == reference.key


def test_bad_files_are_skipped_and_reported(
    image_folder: Path, tmp_path: Path, tiny_embed_options: dict, rng: np.random.Generator
) -> None:
    dog = image_folder / "dog"
    (dog / "zero.png").write_bytes(b"")
    (dog / "text.jpg").write_bytes(b"hello, not a jpeg")
    (dog / "trunc.jpg").write_bytes((dog / "img_1.jpg").read_bytes()[:60])
    Image.fromarray((np.arange(100).reshape(10, 10) * 600).astype(np.uint16)).save(dog / "deep.png")
    Image.new("CMYK", (9, 9), (1, 2, 3, 4)).save(dog / "cmyk.jpg")
    write_image(dog / "gray.png", rng, mode="L")
    write_image(dog / "rgba.png", rng, mode="RGBA")
    write_image(dog / "pal.png", rng, mode="P")
    result = embed_dataset(image_folder, tmp_path / "c", **{**tiny_embed_options, "workers": 2})
    errors = pd.read_csv(tmp_path / "c" / "errors.csv", keep_default_na=False)
    assert sorted(errors["id"]) == ["dog/text.jpg", "dog/trunc.jpg", "dog/zero.png"]
    assert set(errors.columns) == {"id", "path", "reason"}
    assert result.n_skipped == 3 and result.n_samples == 12 + 5
    ids = list(load_embeddings(tmp_path / "c").sample_ids)
    assert {"dog/deep.png", "dog/cmyk.jpg", "dog/gray.png", "dog/rgba.png", "dog/pal.png"} <= set(ids)
    assert "dog/zero.png" not in ids
    assert embed_dataset(image_folder, tmp_path / "c", **tiny_embed_options).n_computed == 0  # failures cached too


def test_duplicate_content_is_embedded_once(image_folder: Path, tmp_path: Path, tiny_embed_options: dict) -> None:
    shutil.copy(image_folder / "dog" / "img_0.png", image_folder / "chat noir" / "copy.png")
    result = embed_dataset(image_folder, tmp_path / "c", **tiny_embed_options)
    assert result.n_samples == 13 and result.n_computed == 12
    samples = read_samples(tmp_path / "c")
    assert samples["sha256"].duplicated().sum() == 1


def test_csv_source_and_settings_make_separate_sets(image_folder: Path, tmp_path: Path, tiny_embed_options: dict) -> None:
    (image_folder / "m.csv").write_text("path,label\ndog/img_0.png,a\ndog/img_1.jpg,b\n", encoding="utf-8")
    cache = tmp_path / "c"
    small = embed_dataset(image_folder / "m.csv", cache, **tiny_embed_options)
    large = embed_dataset(image_folder / "m.csv", cache, **{**tiny_embed_options, "image_size": 40})
    assert small.key != large.key and large.n_computed == 2
    assert load_embeddings(cache, key=large.key).class_names == ["a", "b"]
    assert set(list_embedding_sets(cache)) == {small.key, large.key}
    assert list_embedding_sets(cache)[0] == large.key  # most recent first
    with pytest.raises(CacheError, match="holds 2 embedding sets; pick one with --key") as info:
        load_embeddings(cache)  # issue 11 #2: never "the most recent" silently
    assert small.key in str(info.value) and large.key in str(info.value)


def test_empty_or_missing_source_is_one_clear_error(tmp_path: Path, tiny_embed_options: dict) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        embed_dataset(tmp_path / "missing", tmp_path / "c", **tiny_embed_options)
    (tmp_path / "only_bad" / "cls").mkdir(parents=True)
    (tmp_path / "only_bad" / "cls" / "a.png").write_bytes(b"")
    with pytest.raises(ManifestError, match="errors.csv"):
        embed_dataset(tmp_path / "only_bad", tmp_path / "c", **tiny_embed_options)


def test_mismatched_or_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(WeightsError, match="does not fit resnet18"):
        build_feature_extractor("resnet18", weights=wrong)
    with pytest.raises(WeightsError, match="not found"):
        build_feature_extractor("resnet18", weights=tmp_path / "absent.pth")
    with pytest.raises(WeightsError, match="unknown backbone"):
        build_feature_extractor("resnet_18", weights="none")
    with pytest.raises(WeightsError, match="unknown weights"):
        build_feature_extractor("resnet18", weights="IMAGENET9K")


def test_full_state_dict_with_its_own_head_loads(tmp_path: Path) -> None:
    model = build_feature_extractor("resnet18", weights="none").model
    state = {k: v for k, v in model.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(10, 512), torch.zeros(10)  # a 10-class fine-tune
    torch.save({"state_dict": state}, tmp_path / "finetuned.pth")
    extractor = build_feature_extractor("resnet18", weights=tmp_path / "finetuned.pth")
    assert extractor.weights_id.startswith("sha256:") and extractor.head == "fc"


@pytest.mark.shared_data
@pytest.mark.skipif(not MOBILENET_TRUNK.is_file(), reason=f"shared weights not found at {MOBILENET_TRUNK}")
def test_shared_mobilenet_trunk_file_loads() -> None:
    extractor = build_feature_extractor("mobilenet_v2", weights=MOBILENET_TRUNK)
    assert extractor.head == "classifier.1"
    with torch.inference_mode():
        out = extractor.model(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 1280)


@pytest.mark.parametrize("backbone", ["mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "vit_b_16"])
def test_heads_of_other_families_are_removed(backbone: str) -> None:
    extractor = build_feature_extractor(backbone, weights="none")
    assert extractor.head in {"classifier.3", "classifier.1", "classifier.2", "heads.head"}


def test_preprocess_matches_torchvision_preset(tmp_path: Path, rng: np.random.Generator) -> None:
    from torchvision.models import ResNet18_Weights

    path = write_image(tmp_path / "x.png", rng, size=40)
    ours = default_preprocess("resnet18", image_size=224)
    expected = ResNet18_Weights.DEFAULT.transforms()(Image.open(path).convert("RGB"))
    got = ours.normalize(ours.load(path)[None])[0]
    assert "resize_size=256" in repr(ours) and "crop_size=224" in repr(ours)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
