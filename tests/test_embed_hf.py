"""``coreclean embed --hf``: a Hugging Face dataset in, embedded like a folder, cleaned, and saved back out."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from coreclean.cli import main

datasets = pytest.importorskip("datasets")

TINY = ["--backbone", "resnet18", "--weights", "none", "--image-size", "32", "--device", "cpu",
        "--workers", "0", "--precision", "fp32", "--batch-size", "8"]
CLASSES = ["zebra", "ant", "moth"]
"""Not sorted on purpose: the ClassLabel's order is the one that counts."""
BROKEN_ROW, TWIN_ROWS = 5, (6, 7)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at import: the constants it set are patched too
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    datasets.disable_progress_bars()


def encoded(rng: np.random.Generator, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def make_dataset(*, seed: int = 0, ids: list[str] | None = None, unlabelled: int | None = None) -> "datasets.Dataset":
    """3 classes x 8 tiny images (PNG and JPEG); row 5's bytes are no image, rows 6 and 7 hold the same bytes.

    ``ids`` adds a string column ``name``; ``unlabelled`` is a row whose label is -1 (ClassLabel's "none").
    """
    rng = np.random.default_rng(seed)
    images = [{"bytes": encoded(rng, "PNG" if row % 2 else "JPEG"), "path": None} for row in range(24)]
    images[BROKEN_ROW] = {"bytes": b"these bytes are no image", "path": None}
    images[TWIN_ROWS[1]] = images[TWIN_ROWS[0]]
    labels = [-1 if row == unlabelled else row // 8 for row in range(24)]
    columns = {"img": images, "animal": labels, "note": [f"n{row}" for row in range(24)]}
    features = {"img": datasets.Image(), "animal": datasets.ClassLabel(names=CLASSES), "note": datasets.Value("string")}
    if ids is not None:
        columns["name"] = ids
        features["name"] = datasets.Value("string")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def embed(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(["-q", "embed", *argv, *TINY])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_embed_a_saved_dataset_dict(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    datasets.DatasetDict({"train": make_dataset(), "test": make_dataset(seed=1)}).save_to_disk(tmp_path / "dd")
    cache = tmp_path / "cache"
    code, out, err = embed(["--hf", str(tmp_path / "dd"), "--cache", str(cache)], capsys)
    assert code == 0, err
    assert "embedded 23 images (23 newly computed), 1 skipped" in out  # 24 rows, the twins one image
    from coreclean import load_embeddings
    from coreclean.embedding.cache import read_samples

    samples = read_samples(cache)
    assert samples["id"].tolist() == [f"{row:02d}" for row in range(24) if row != BROKEN_ROW]
    assert load_embeddings(cache).class_names == CLASSES
    expected = [row // 8 for row in range(24) if row != BROKEN_ROW]
    assert samples["label"].tolist() == expected
    assert samples["label_name"].tolist() == [CLASSES[k] for k in expected]
    stored = sorted(p for p in (cache / "images").rglob("*") if p.is_file())
    assert len(stored) == 23  # 24 rows, two share their bytes: one file
    twins = samples.set_index("id").loc[[f"{row:02d}" for row in TWIN_ROWS], "path"]
    assert twins.iloc[0] == twins.iloc[1] and Path(twins.iloc[0]).parent.parent == cache / "images"
    for path, sha in zip(samples["path"], samples["sha256"]):  # content-addressed: the name is the bytes' hash
        assert Path(path).stem == sha and Path(path).parent.name == sha[:2] and Path(path).suffix in (".png", ".jpg")
    errors = pd.read_csv(cache / "errors.csv", dtype=str)
    assert errors["id"].tolist() == [f"{BROKEN_ROW:02d}"] and "not an image" in errors["reason"][0]
    assert Path(errors["path"][0]).suffix == ".bin" and Path(errors["path"][0]).is_file()

    cut, content = stored[0], stored[0].read_bytes()
    cut.write_bytes(b"")  # as a power cut before the flush may leave it
    modified = {p: p.stat().st_mtime_ns for p in stored[1:]}
    code, out, _ = embed(["--hf", str(tmp_path / "dd"), "--cache", str(cache)], capsys)
    assert code == 0 and "(0 newly computed), 1 skipped" in out  # resume: nothing embedded twice
    assert {p: p.stat().st_mtime_ns for p in stored[1:]} == modified  # nor written again
    assert cut.read_bytes() == content  # but a file of the wrong size is

    from coreclean.formats.hf_source import read_hf_dataset

    test = read_hf_dataset(tmp_path / "dd", cache, split="test")  # another split: other rows, its own source
    assert len(test) == 24 and not set(map(str, test.paths)) & set(samples["path"])
    assert "split=test" in str(test.source) and test.class_names == CLASSES


def test_id_column_single_dataset_and_repair_hint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ids = [f"photo-{row}" for row in range(24)]
    ids[3] = ids[2]  # a repeated id is left out and reported, like a repeated CSV id
    make_dataset(ids=ids, unlabelled=20).save_to_disk(tmp_path / "ds")
    cache = tmp_path / "cache"
    argv = ["--hf", str(tmp_path / "ds"), "--cache", str(cache), "--id-column", "name"]
    code, out, err = embed(argv, capsys)
    assert code == 0, err
    assert "embedded 21 images" in out and "3 skipped" in out
    errors = pd.read_csv(cache / "errors.csv", dtype=str).set_index("id")["reason"]
    assert "duplicate id 'photo-2' on row 3 (first on row 2)" in errors["photo-2"]
    assert errors["photo-20"] == "no label on row 20"
    assert "not an image" in errors[f"photo-{BROKEN_ROW}"]
    from coreclean.embedding.cache import list_embedding_sets, read_samples
    from coreclean.exceptions import CacheError

    assert read_samples(cache)["id"].tolist()[:3] == ["photo-0", "photo-1", "photo-2"]
    (set_dir,) = [cache / "embeddings" / key for key in list_embedding_sets(cache)]
    (set_dir / "samples.csv").write_text("tampered", encoding="utf-8")
    with pytest.raises(CacheError, match=r"coreclean embed --hf \S+/ds --image-column img --label-column animal "
                                         r"--id-column name --cache"):
        read_samples(cache)
    code, _, err = embed([*argv, "--split", "train"], capsys)  # a single Dataset has no splits
    assert code == 2 and "single saved Dataset with no splits; drop --split train" in err


def test_named_dataset_is_loaded_with_load_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "parquet-data"
    folder.mkdir()
    make_dataset().to_parquet(str(folder / "train.parquet"))  # what the Hub serves; read offline by load_dataset
    code, out, err = embed(["--hf", str(folder), "--cache", str(tmp_path / "cache")], capsys)
    assert code == 0, err
    assert "embedded 23 images (23 newly computed), 1 skipped" in out
    code, _, err = embed(["--hf", str(folder), "--split", "validation", "--cache", str(tmp_path / "cache")], capsys)
    assert code == 2 and "has no split 'validation'" in err and "'train'" in err and "pick one with --split" in err


def test_images_a_dataset_keeps_as_files_are_used_where_they_are(image_folder: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    cache = tmp_path / "cache"  # load_dataset reads a class-folder tree as "imagefolder": paths, no bytes
    code, out, err = embed(["--hf", str(image_folder), "--cache", str(cache)], capsys)
    assert code == 0, err
    assert "embedded 12 images (12 newly computed)" in out
    from coreclean.embedding.cache import read_samples

    paths = [Path(p) for p in read_samples(cache)["path"]]
    assert all(image_folder in p.parents for p in paths) and not (cache / "images").exists()


@pytest.mark.usefixtures("one_thread")
def test_round_trip_fixes_come_back_in_the_saved_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_dataset().save_to_disk(tmp_path / "ds")
    cache = tmp_path / "cache"
    assert embed(["--hf", str(tmp_path / "ds"), "--cache", str(cache)], capsys)[0] == 0
    common = ["--session", str(tmp_path / "s.session"), "--threads", "1"]
    assert main(["session", "start", "--cache", str(cache), "--class", "zebra", "--per-class", "4", "--no-evaluate",
                 *common]) == 0
    assert main(["session", "next", *common, "--out", str(tmp_path / "review")]) == 0
    assert (tmp_path / "review" / "round-1.png").stat().st_size > 1000  # the contact sheet found the stored images
    sheet = pd.read_csv(tmp_path / "review" / "round-1.csv", dtype=str, keep_default_na=False)
    relabelled, dropped = sheet["id"][0], sheet["id"][1]
    sheet["action"] = ["relabel", "drop"] + ["keep"] * (len(sheet) - 2)
    sheet["new_label"] = ["moth"] + [""] * (len(sheet) - 1)
    sheet.to_csv(tmp_path / "decisions.csv", index=False)
    assert main(["session", "apply", *common, str(tmp_path / "decisions.csv")]) == 0
    capsys.readouterr()
    assert main(["session", "export", *common, "--out", str(tmp_path / "hf"), "--format", "hf"]) == 0
    assert main(["session", "export", *common, "--out", str(tmp_path / "csv")]) == 0  # no source folder: labels only
    out = capsys.readouterr().out
    assert "manifest:" not in out and "--format hf saves the cleaned dataset" in out

    from coreclean.embedding.cache import read_samples
    from coreclean.review.security import FileGuard
    from coreclean.review.thumbnails import ThumbnailCache

    samples = read_samples(cache).set_index("id")  # the review page serves the stored images by id
    guard = FileGuard(samples["path"].to_dict(), hashes=samples["sha256"].to_dict())
    thumbnail = ThumbnailCache().get(guard.resolve(relabelled), sha256=samples.at[relabelled, "sha256"], size=64)
    assert thumbnail[:2] == b"\xff\xd8"  # a JPEG

    cleaned = datasets.load_from_disk(str(tmp_path / "hf"))
    assert len(cleaned) == 22 and dropped not in cleaned["id"]  # 24 rows, a broken one and a dropped one
    assert cleaned.features["label"].names == CLASSES
    row = cleaned["id"].index(relabelled)
    assert CLASSES[cleaned["label"][row]] == "moth" and cleaned["original_label"][row] == "zebra"
    original = make_dataset()[int(relabelled)]["img"]
    assert np.array_equal(np.asarray(cleaned[row]["image"]), np.asarray(original))  # the same picture came back


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--label-column", "colour"], "no column 'colour' in"),
        (["--label-column", "note"], "column 'note' of"),
        (["--image-column", "animal"], "is ClassLabel, not a Image"),
        (["--split", "validation"], "has no split 'validation'; pick one of ['train'] with --split"),
        (["--id-column", "nope"], "no column 'nope'"),
    ],
)
def test_bad_choices_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture, options: list[str],
                                         message: str) -> None:
    datasets.DatasetDict({"train": make_dataset()}).save_to_disk(tmp_path / "dd")
    code, _, err = embed(["--hf", str(tmp_path / "dd"), "--cache", str(tmp_path / "c"), *options], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    if options[:2] == ["--label-column", "note"]:
        assert "not a ClassLabel" in err and "class_encode_column('note')" in err
    if options[0] in ("--label-column", "--id-column") and "no column" in message:
        assert "img (Image), animal (ClassLabel), note (Value)" in err  # the columns there are


def test_ambiguous_or_missing_columns_say_which_option_picks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_dataset().cast_column("note", datasets.ClassLabel(names=[f"n{row}" for row in range(24)]))
    data.save_to_disk(tmp_path / "two-labels")
    code, _, err = embed(["--hf", str(tmp_path / "two-labels"), "--cache", str(tmp_path / "c")], capsys)
    assert code == 2 and "has 2 ClassLabel column(s); name one with --label-column" in err
    make_dataset().remove_columns("img").save_to_disk(tmp_path / "no-images")
    code, _, err = embed(["--hf", str(tmp_path / "no-images"), "--cache", str(tmp_path / "c")], capsys)
    assert code == 2 and "has no Image column(s); name one with --image-column" in err
    code, _, err = embed(["--hf", str(tmp_path / "nowhere"), "--cache", str(tmp_path / "c")], capsys)
    assert code == 2 and "cannot load the Hugging Face dataset" in err and len(err.strip().splitlines()) == 1
    code, _, err = embed(["--hf", "someone/no-such-dataset", "--cache", str(tmp_path / "c")], capsys)
    assert code == 2 and "cannot load the Hugging Face dataset someone/no-such-dataset" in err
    assert "offline: one in the local Hugging Face cache" in err and len(err.strip().splitlines()) == 1
    code, _, err = embed([str(tmp_path), "--split", "train", "--cache", str(tmp_path / "c")], capsys)
    assert code == 2 and "--split goes with --hf" in err


def test_without_datasets_the_error_names_the_extra(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)
    code, _, err = embed(["--hf", str(tmp_path / "dd"), "--cache", str(tmp_path / "c")], capsys)
    assert code == 2 and "pip install 'coreclean[hf]'" in err
