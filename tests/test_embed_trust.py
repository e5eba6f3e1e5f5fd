"""Issue 11, the embedding side: hostile folders and damaged caches give a right result or a one-line
error naming the command that fixes it (and that command works), never a silent wrong result or a
traceback. Each test names the finding it covers. Embeddings use the model-free ``pixels`` backbone."""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import coreclean.embedding.embed as embed_module
import coreclean.embedding.images as images_module
from coreclean import embed_dataset, load_embeddings, read_manifest, read_samples
from coreclean.cli import main
from coreclean.embedding.cache import dataset_dir, make_key
from coreclean.embedding.chunks import ChunkStore
from coreclean.embedding.images import UnreadableImageError, load_rgb
from coreclean.exceptions import CacheError, SessionError
from coreclean.sessions.session import CleaningSession

PIXELS = {"backbone": "pixels", "weights": "none", "image_size": 16, "device": "cpu", "workers": 0,
          "batch_size": 4, "precision": "fp32", "progress": False}
PIXELS_CLI = ["--backbone", "pixels", "--weights", "none", "--image-size", "16", "--device", "cpu",
              "--workers", "0", "--precision", "fp32"]


def _folder(root: Path, classes=("a", "b", "c"), per_class: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{k}.png")
    return root


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _fix_command(message: str) -> list[str]:
    """The `coreclean ...` command quoted in an error message, as argv for :func:`main`."""
    command = message.split("`coreclean ", 1)[1].split("`", 1)[0]
    return ["-q", *shlex.split(command)]


# --- 1: symlinks -------------------------------------------------------------------------------


def test_symlink_loops_are_walked_once_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # finding 1: `ln -s .. d/b/loop; ln -s . d/a/self` made 6 files 2,706 samples
    data = _folder(tmp_path / "d", classes=("a", "b"), per_class=3)
    os.symlink("..", data / "b" / "loop")
    os.symlink(".", data / "a" / "self")
    os.symlink("../a/0.png", data / "b" / "linked.png")  # the same file, reached again under another label
    with caplog.at_level(logging.WARNING):
        manifest = read_manifest(data)
    assert sorted(manifest.sample_ids) == ["a/0.png", "a/1.png", "a/2.png", "b/0.png", "b/1.png", "b/2.png"]
    assert [p.sample_id for p in manifest.problems] == ["b/linked.png"]
    assert "same file as 'a/0.png'" in manifest.problems[0].reason
    loops = [r.getMessage() for r in caplog.records if "symlinked folder" in r.getMessage()]
    assert len(loops) == 1 and "skipped 2 symlinked folder(s)" in loops[0]


def test_symlinked_class_folders_are_followed(tmp_path: Path) -> None:
    store = _folder(tmp_path / "store", classes=("x", "y"), per_class=2)
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(store / "x", data / "cat")
    os.symlink(store / "y", data / "dog")
    manifest = read_manifest(data)
    assert manifest.sample_ids == ["cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png"]
    assert manifest.problems == []


# --- 2: several datasets in one cache ----------------------------------------------------------


def test_second_dataset_in_a_cache_leaves_the_first_and_its_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # finding 2: a second `embed` into the same cache replaced the first set and broke its sessions
    cache = tmp_path / "cache"
    first = embed_dataset(_folder(tmp_path / "one", per_class=6), cache, **PIXELS)
    files = {name: (first.path / name).read_bytes() for name in ("features.npy", "samples.csv", "info.json")}
    with CleaningSession.start(cache, tmp_path / "s.session", classes=["a"], batch_size=3, key=first.key,
                               evaluate=False, method="random"):
        pass
    second = embed_dataset(_folder(tmp_path / "two", per_class=5, seed=1), cache, **PIXELS)
    assert second.key != first.key and second.n_samples == 15
    assert {name: (first.path / name).read_bytes() for name in files} == files
    with CleaningSession.open(tmp_path / "s.session") as session:
        assert session.cache_key == first.key and len(session.sample_ids) == 18

    # where a command could mean either set, it stops and lists them with the option that picks one
    code, _, err = _run_cli(["rank", "--cache", str(cache), "--out", str(tmp_path / "r.csv")], capsys)
    assert code == 2 and "holds 2 embedding sets; pick one with --key KEY" in err
    assert first.key in err and second.key in err and str(tmp_path / "two") in err
    code, _, err = _run_cli(["session", "start", "--cache", str(cache), "--class", "a", "--no-evaluate",
                             "--session", str(tmp_path / "x.session")], capsys)
    assert code == 2 and "pick one with --key KEY" in err and not (tmp_path / "x.session").exists()
    code, out, _ = _run_cli(["session", "start", "--cache", str(cache), "--class", "a", "--no-evaluate",
                             "--method", "random", "--batch", "3", "--key", second.key,
                             "--session", str(tmp_path / "x.session")], capsys)
    assert code == 0 and "started" in out
    with CleaningSession.open(tmp_path / "x.session") as session:
        assert session.cache_key == second.key and len(session.sample_ids) == 15


def test_sets_with_the_same_settings_share_vectors(tmp_path: Path) -> None:
    data = _folder(tmp_path / "d")
    (data / "m.csv").write_text("path,label\na/0.png,x\nb/1.png,y\n", encoding="utf-8")
    whole = embed_dataset(data, tmp_path / "c", **PIXELS)
    subset = embed_dataset(data / "m.csv", tmp_path / "c", **PIXELS)
    assert subset.key != whole.key and subset.n_computed == 0
    a, b = load_embeddings(tmp_path / "c", key=whole.key), load_embeddings(tmp_path / "c", key=subset.key)
    np.testing.assert_array_equal(b.features[0], a.features[list(a.sample_ids).index("a/0.png")])


def test_a_format_1_set_keeps_its_key(tmp_path: Path) -> None:
    # a cache from before this version: keyed by the settings alone, so sessions on it keep working
    settings = {"backbone": "pixels"}
    legacy = tmp_path / "embeddings" / make_key(settings, prefix="p")
    legacy.mkdir(parents=True)
    (legacy / "info.json").write_text(json.dumps({"source": "/data/x"}), encoding="utf-8")
    assert dataset_dir(tmp_path, settings, "/data/x", prefix="p")[0] == legacy
    other, stored = dataset_dir(tmp_path, settings, "/data/y", prefix="p")
    assert other != legacy and stored["dataset"] == "/data/y"


# --- 4 and 9: damaged caches -------------------------------------------------------------------


@pytest.fixture
def embedded(tmp_path: Path):
    data = _folder(tmp_path / "d", per_class=6)
    result = embed_dataset(data, tmp_path / "c", **PIXELS)
    reference = np.array(load_embeddings(tmp_path / "c").features)
    return tmp_path / "c", result, reference


def _assert_repaired(cache: Path, message: str, reference: np.ndarray, capsys: pytest.CaptureFixture) -> None:
    """Run the command ``message`` names; the set must then load and equal ``reference``."""
    assert main(_fix_command(message)) == 0
    capsys.readouterr()
    emb = load_embeddings(cache)
    np.testing.assert_array_equal(np.asarray(emb.features), reference)
    assert list(emb.sample_ids) == sorted(emb.sample_ids)


def test_swapped_or_edited_samples_rows_are_detected_and_repaired(embedded, capsys: pytest.CaptureFixture) -> None:
    # finding 4: swapping two rows of samples.csv gave one sample another's vector, exit 0
    cache, result, reference = embedded
    table = result.path / "samples.csv"
    lines = table.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]
    table.write_text("".join(lines), encoding="utf-8")
    for argv in (["rank", "--cache", str(cache), "--out", str(cache / "r.csv")], ["classes", "--cache", str(cache)]):
        code, _, err = _run_cli(argv, capsys)
        assert code == 2 and "changed or damaged" in err and "coreclean embed" in err
    with pytest.raises(CacheError, match="changed or damaged") as info:
        load_embeddings(cache)
    _assert_repaired(cache, str(info.value), reference, capsys)

    edited = table.read_text(encoding="utf-8").replace(",0,a\n", ",1,b\n", 1)  # a label edited by hand
    table.write_text(edited, encoding="utf-8")
    with pytest.raises(CacheError, match="changed or damaged"):
        read_samples(cache)


@pytest.mark.parametrize("damage", ["truncate", "nan"])
def test_damaged_features_are_detected_and_embed_repairs_them(
    embedded, capsys: pytest.CaptureFixture, damage: str
) -> None:
    # findings 4 and 9: "re-run `coreclean embed`" printed "0 newly computed" and left the file broken;
    # NaN bytes gave a traceback from `classes`
    cache, result, reference = embedded
    path = result.path / "features.npy"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 100]
    else:
        data[-4 * 7 : -4 * 6] = np.float32(np.nan).tobytes()
    path.write_bytes(bytes(data))
    code, _, err = _run_cli(["classes", "--cache", str(cache)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "coreclean embed" in err
    with pytest.raises(CacheError) as info:
        load_embeddings(cache)
    _assert_repaired(cache, str(info.value), reference, capsys)


def test_features_are_hashed_once_per_change(embedded, monkeypatch: pytest.MonkeyPatch) -> None:
    from coreclean.embedding import integrity

    cache, result, _ = embedded
    calls = []
    real = integrity.block_digests
    monkeypatch.setattr(integrity, "block_digests", lambda *a: calls.append(1) or real(*a))
    (result.path / "verified.json").unlink()
    load_embeddings(cache)
    load_embeddings(cache)
    assert len(calls) == 1
    os.utime(result.path / "features.npy")  # any change of the file means checking it again
    load_embeddings(cache)
    assert len(calls) == 2


def test_invalid_info_json_is_an_error_naming_embed_which_repairs_it(embedded, capsys: pytest.CaptureFixture) -> None:
    # finding 9: an invalid info.json gave a JSONDecodeError from `embed`
    cache, result, reference = embedded
    (result.path / "info.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CacheError, match="cannot read .*info.json") as info:
        load_embeddings(cache)
    _assert_repaired(cache, str(info.value), reference, capsys)


def test_an_older_cache_format_says_what_to_run(embedded, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    # the integrity rule: a set without checksums (format 1) is refused with the command that upgrades it
    cache, result, reference = embedded
    with CleaningSession.start(cache, tmp_path / "s.session", classes=["a"], batch_size=3, evaluate=False,
                               method="random"):
        pass
    info = json.loads((result.path / "info.json").read_text(encoding="utf-8"))
    del info["format_version"], info["checksums"]
    (result.path / "info.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(SessionError, match="older coreclean .*format 1") as err:
        CleaningSession.open(tmp_path / "s.session")
    _assert_repaired(cache, str(err.value), reference, capsys)
    with CleaningSession.open(tmp_path / "s.session") as session:  # same key, same fingerprint
        assert session.cache_key == result.key


def test_truncated_chunk_is_recomputed(tmp_path: Path) -> None:
    # finding 9: a truncated chunk .npz gave zipfile.BadZipFile from `embed`
    data = _folder(tmp_path / "d")
    reference = embed_dataset(data, tmp_path / "ref", **PIXELS)
    first = embed_dataset(data, tmp_path / "c", **{**PIXELS, "chunk_size": 4})
    chunks = sorted((first.path / "chunks").glob("chunk-*.npz"))
    assert len(chunks) == 3
    chunks[1].write_bytes(chunks[1].read_bytes()[:300])
    again = embed_dataset(data, tmp_path / "c", **{**PIXELS, "chunk_size": 4})
    assert again.n_computed == 4 and not chunks[1].exists()
    np.testing.assert_array_equal(np.asarray(load_embeddings(tmp_path / "c").features),
                                  np.asarray(load_embeddings(tmp_path / "ref", key=reference.key).features))


def test_chunk_damaged_inside_is_recomputed_when_read_back(tmp_path: Path) -> None:
    data = _folder(tmp_path / "d")
    first = embed_dataset(data, tmp_path / "c", **{**PIXELS, "chunk_size": 4})
    reference = np.array(load_embeddings(tmp_path / "c").features)
    chunk = sorted((first.path / "chunks").glob("chunk-*.npz"))[0]
    raw = bytearray(chunk.read_bytes())
    start = raw.index(b"features.npy") + 200  # inside the features member: its CRC no longer matches
    raw[start : start + 8] = b"\xff" * 8
    chunk.write_bytes(bytes(raw))
    (first.path / "features.npy").unlink()  # so publishing has to read the chunks back
    again = embed_dataset(data, tmp_path / "c", **{**PIXELS, "chunk_size": 4})
    assert again.n_computed == 4
    np.testing.assert_array_equal(np.asarray(load_embeddings(tmp_path / "c").features), reference)


# --- 7: labels -----------------------------------------------------------------------------------


def test_csv_labels_are_stripped_and_09_is_not_9(tmp_path: Path) -> None:
    # finding 7: labels `a ` and ` b` made classes [' b', 'a', 'a ', 'b']
    _folder(tmp_path, classes=("i",), per_class=4)
    (tmp_path / "m.csv").write_text("path,label\ni/0.png,a \ni/1.png, b\ni/2.png,a\ni/3.png,b\n", encoding="utf-8")
    manifest = read_manifest(tmp_path / "m.csv")
    assert manifest.class_names == ["a", "b"] and manifest.labels.tolist() == [0, 1, 0, 1]
    (tmp_path / "n.csv").write_text("path,label\ni/0.png,9\ni/1.png,09\ni/2.png,10\ni/3.png, 9\n", encoding="utf-8")
    numeric = read_manifest(tmp_path / "n.csv")
    assert numeric.class_names == ["09", "9", "10"] and numeric.labels.tolist() == [1, 0, 2, 1]


# --- 8: file names that are not UTF-8 ------------------------------------------------------------


def test_non_utf8_file_name_is_skipped_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # finding 8: one such name stopped the whole embed with UnicodeEncodeError
    data = _folder(tmp_path / "d")
    try:
        shutil.copy(data / "a" / "0.png", data / "a" / os.fsdecode(b"caf\xe9.png"))
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses non-UTF-8 names")
    code, out, _ = _run_cli(["-q", "embed", str(data), "--cache", str(tmp_path / "c"), *PIXELS_CLI], capsys)
    assert code == 0 and "embedded 12 images" in out and "1 skipped" in out
    errors = pd.read_csv(tmp_path / "c" / "errors.csv", keep_default_na=False)
    assert errors["id"].tolist() == ["a/caf\\xe9.png"] and "not valid UTF-8" in errors["reason"][0]


def test_hash_memo_survives_a_non_utf8_path(tmp_path: Path) -> None:
    # finding 8: the UnicodeEncodeError came from writing the hash memo
    from coreclean._internal.hashing import hash_files

    good = tmp_path / "good.png"
    good.write_bytes(b"abc")
    odd = tmp_path / os.fsdecode(b"caf\xe9.png")
    try:
        odd.write_bytes(b"abc")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses non-UTF-8 names")
    first = hash_files([good, odd], memo_path=tmp_path / "memo.csv")
    assert first[0] == first[1] and len(first[0]) == 64
    assert (tmp_path / "memo.csv").read_text(encoding="utf-8").count("\n") == 1  # only the UTF-8 path


# --- 12: resume at any size ---------------------------------------------------------------------


def test_work_is_committed_by_time_so_a_small_run_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # finding 12: under one chunk (default 4096) a killed run saved nothing
    data = _folder(tmp_path / "d")
    reference = embed_dataset(data, tmp_path / "ref", **PIXELS)
    monkeypatch.setattr(embed_module, "COMMIT_SECONDS", 0.0)  # every batch is "30 s of work"
    real_commit, calls = ChunkStore.commit, []

    def killed_on_second_commit(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("killed")  # not KeyboardInterrupt: nothing gets a chance to save more
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(ChunkStore, "commit", killed_on_second_commit)
    with pytest.raises(SystemExit):
        embed_dataset(data, tmp_path / "c", **PIXELS)
    monkeypatch.setattr(ChunkStore, "commit", real_commit)
    resumed = embed_dataset(data, tmp_path / "c", **PIXELS)
    assert resumed.n_computed == 12 - 4
    np.testing.assert_array_equal(np.asarray(load_embeddings(tmp_path / "c").features),
                                  np.asarray(load_embeddings(tmp_path / "ref", key=reference.key).features))


def test_ctrl_c_saves_every_finished_vector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # finding 12: "interrupted; everything finished so far is saved" must be true
    data = _folder(tmp_path / "d")
    real_forward, calls = embed_module._forward, []

    def interrupted_on_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(embed_module, "_forward", interrupted_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(data, tmp_path / "c", **PIXELS)
    monkeypatch.setattr(embed_module, "_forward", real_forward)
    assert embed_dataset(data, tmp_path / "c", **PIXELS).n_computed == 12 - 8


# --- 20: huge images -----------------------------------------------------------------------------


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG claiming ``width`` x ``height`` whose pixel data is a few bytes (never decoded in full)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_huge_images_are_refused_before_decoding(tmp_path: Path) -> None:
    # finding 20: a 13,000 x 13,000 PNG decoded at 2 GB peak
    with pytest.raises(UnreadableImageError, match="13000 x 13000 = 169,000,000 pixels, above the limit"):
        load_rgb(_png_header_only(tmp_path / "huge.png", 13000, 13000))


def test_jpeg_above_the_limit_is_decoded_reduced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images_module, "MAX_PIXELS", 40 * 40)
    Image.new("RGB", (128, 96), (9, 9, 9)).save(tmp_path / "big.jpg")
    assert load_rgb(tmp_path / "big.jpg").size == (32, 24)  # 1/4 per side brings it under the limit
    Image.new("RGB", (128, 96), (9, 9, 9)).save(tmp_path / "big.png")
    with pytest.raises(UnreadableImageError, match="above the limit"):
        load_rgb(tmp_path / "big.png")


def test_huge_image_in_a_folder_lands_in_errors_csv(tmp_path: Path) -> None:
    data = _folder(tmp_path / "d")
    _png_header_only(data / "a" / "huge.png", 13000, 13000)
    result = embed_dataset(data, tmp_path / "c", **PIXELS)
    errors = pd.read_csv(tmp_path / "c" / "errors.csv", keep_default_na=False)
    assert result.n_samples == 12 and errors["id"].tolist() == ["a/huge.png"]
    assert "above the limit" in errors["reason"][0]


# --- 19: a single class --------------------------------------------------------------------------


def test_classes_says_one_class_cannot_be_cleaned(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # finding 19: `classes` recommended cleaning it, "most confused with ''"
    embed_dataset(_folder(tmp_path / "d", classes=("a",), per_class=6), tmp_path / "c", **PIXELS)
    code, out, _ = _run_cli(["classes", "--cache", str(tmp_path / "c")], capsys)
    assert code == 0 and "cannot be cleaned by this method" in out and "clean first" not in out
