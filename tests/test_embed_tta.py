"""Test-time augmentation in ``embed``: ``tta="flip"`` is the mean of an image's and its mirror's embeddings,
its views share cached vectors with plain sets both ways, and a damaged view chunk is repaired."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import coreclean
from coreclean.embedding import embed as embed_module
from coreclean.embedding.cache import read_cache_info
from coreclean.exceptions import CorecleanError


def _square_folder(root: Path, *, mirrored: bool = False, n_per_class: int = 3) -> Path:
    """36 x 36 PNGs: at image_size 32 the resize is a no-op and the crop symmetric, so the crop of a
    mirrored file is exactly the mirror of the crop."""
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        for k in range(n_per_class):
            pixels = rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8)
            if mirrored:
                pixels = pixels[:, ::-1]
            path = root / name / f"img_{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    return root


def _counting_compute(calls: list[tuple[bool, int]]):
    def compute(extractor, preprocess, todo, store, **kwargs):
        calls.append((preprocess.mirror, len(todo)))
        embed_module._run(extractor, preprocess, todo, store, **kwargs)
    return compute


def test_flip_is_the_mean_of_the_image_and_its_mirror(tmp_path: Path, tiny_embed_options: dict) -> None:
    folder = _square_folder(tmp_path / "data")
    mirror_folder = _square_folder(tmp_path / "mirror", mirrored=True)
    plain = coreclean.load_embeddings(tmp_path / "c1", key=coreclean.embed_dataset(
        folder, tmp_path / "c1", **tiny_embed_options).key)
    mirrored = coreclean.load_embeddings(tmp_path / "c2", key=coreclean.embed_dataset(
        mirror_folder, tmp_path / "c2", **tiny_embed_options).key)
    result = coreclean.embed_dataset(folder, tmp_path / "c3", tta="flip", **tiny_embed_options)
    flipped = coreclean.load_embeddings(tmp_path / "c3", key=result.key)

    assert "-flip-" in result.key and result.n_samples == 6
    assert list(flipped.sample_ids) == list(plain.sample_ids) == list(mirrored.sample_ids)
    assert not np.allclose(plain.features, mirrored.features, atol=1e-3)  # the mirror is another input
    np.testing.assert_allclose(flipped.features, (plain.features + mirrored.features) / 2, atol=1e-5)


def test_flip_reuses_cached_plain_vectors_and_plain_reuses_the_flip_sets(
    tmp_path: Path, tiny_embed_options: dict
) -> None:
    folder = _square_folder(tmp_path / "data")
    calls: list[tuple[bool, int]] = []
    compute = _counting_compute(calls)
    plain = coreclean.embed_dataset(folder, tmp_path / "cache", compute=compute, **tiny_embed_options)
    assert calls == [(False, 6)]
    flipped = coreclean.embed_dataset(folder, tmp_path / "cache", tta="flip", compute=compute, **tiny_embed_options)
    assert calls[1:] == [(True, 6)]  # only the mirrors were run through the model
    assert flipped.key != plain.key

    calls.clear()
    other = _square_folder(tmp_path / "other")  # same images, another dataset folder
    coreclean.embed_dataset(other, tmp_path / "cache", tta="flip", compute=compute, **tiny_embed_options)
    coreclean.embed_dataset(other, tmp_path / "cache", compute=compute, **tiny_embed_options)
    assert calls == []


def test_plain_sets_keep_their_settings(tmp_path: Path, tiny_embed_options: dict, image_folder: Path) -> None:
    result = coreclean.embed_dataset(image_folder, tmp_path / "cache", **tiny_embed_options)
    info = read_cache_info(tmp_path / "cache", key=result.key)
    assert "tta" not in info and "mirror" not in info["transform"]
    assert not (result.path / "views").exists()


def test_unknown_tta_is_one_clear_error(tmp_path: Path, tiny_embed_options: dict, image_folder: Path) -> None:
    with pytest.raises(CorecleanError, match="use one of none, flip"):
        coreclean.embed_dataset(image_folder, tmp_path / "cache", tta="rotate", **tiny_embed_options)


def test_a_damaged_mirror_chunk_is_computed_again(tmp_path: Path, tiny_embed_options: dict) -> None:
    folder = _square_folder(tmp_path / "data")
    first = coreclean.embed_dataset(folder, tmp_path / "cache", tta="flip", **tiny_embed_options)
    before = coreclean.load_embeddings(tmp_path / "cache", key=first.key).features.copy()
    chunks = sorted((first.path / "views" / "mirror" / "chunks").glob("chunk-*.npz"))
    assert chunks
    chunks[0].write_bytes(b"not a chunk")
    (first.path / "features.npy").unlink()  # so publishing must read the chunks again

    again = coreclean.embed_dataset(folder, tmp_path / "cache", tta="flip", **tiny_embed_options)
    assert again.key == first.key and again.n_computed == 6
    np.testing.assert_allclose(coreclean.load_embeddings(tmp_path / "cache", key=again.key).features, before,
                               atol=1e-6)


def test_cli_embeds_with_flip(tmp_path: Path) -> None:
    folder = _square_folder(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "coreclean", "--quiet", "embed", str(folder), "--cache", str(tmp_path / "cache"), "--tta", "flip",
         "--weights", "none", "--image-size", "32", "--device", "cpu", "--workers", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "embedded 6 images (6 newly computed)" in done.stdout and "-flip-" in done.stdout


def test_an_unreadable_file_is_tried_once_and_reported(tmp_path: Path, tiny_embed_options: dict) -> None:
    folder = _square_folder(tmp_path / "data")
    (folder / "cat" / "broken.png").write_bytes(b"not an image")
    calls: list[tuple[bool, int]] = []
    result = coreclean.embed_dataset(folder, tmp_path / "cache", tta="flip", compute=_counting_compute(calls),
                                     **tiny_embed_options)
    assert calls == [(False, 7), (True, 6)]  # the mirror view does not decode the file the plain view could not
    assert (result.n_samples, result.n_skipped) == (6, 1)
    errors = (tmp_path / "cache" / "errors.csv").read_text(encoding="utf-8")
    assert "cat/broken.png" in errors
