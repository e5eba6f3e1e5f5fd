"""Tests for ``coreclean embed``: exit codes, one-line errors, both input modes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coreclean import load_embeddings
from coreclean.embedding.cache import list_embedding_sets
from coreclean.cli import main
from coreclean.embedding import reuse

TINY = ["--backbone", "resnet18", "--weights", "none", "--image-size", "32", "--device", "cpu",
        "--workers", "0", "--precision", "fp32"]


def test_embed_folder(image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["-q", "embed", str(image_folder), "--cache", str(tmp_path / "c"), *TINY]) == 0
    assert "embedded 12 images (12 newly computed)" in capsys.readouterr().out
    assert main(["-q", "embed", str(image_folder), "--cache", str(tmp_path / "c"), *TINY]) == 0
    assert "(0 newly computed)" in capsys.readouterr().out
    assert load_embeddings(tmp_path / "c").features.shape == (12, 512)


def test_embed_into_a_log_writes_no_bar_redraws(image_folder: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    # stderr here is not a terminal: tqdm drew its bar into it anyway, carriage returns ten times a second
    assert main(["embed", str(image_folder), "--cache", str(tmp_path / "c"), *TINY, "--batch-size", "2"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "img/s" not in err


def test_a_repeated_embed_with_nothing_new_answers_without_importing_torch(image_folder: Path, tmp_path: Path) -> None:
    """A no-op `coreclean embed` spent 4.4 s of its 4.9 s importing torch and torchvision (3,000 images)."""
    argv = ["-q", "embed", str(image_folder), "--cache", str(tmp_path / "c"), *TINY]
    script = ("import sys; from coreclean.cli import main; code = main(sys.argv[1:]); "
              "print('torch imported:', 'torch' in sys.modules); sys.exit(code)")

    def run() -> str:
        done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = run()
    assert "(12 newly computed)" in first and "torch imported: True" in first
    second = run()
    assert "embedded 12 images (0 newly computed)" in second and "torch imported: False" in second
    assert load_embeddings(tmp_path / "c").features.shape == (12, 512)


def test_a_weights_file_is_read_once_per_embed_and_again_once_rewritten(
        image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI hashed a weights file three times per embed (the torch-free check, the request, the loaded model)."""
    import torch

    from coreclean._internal import hashing
    from coreclean.embedding.backbones import build_feature_extractor

    weights = tmp_path / "trunk.pth"
    torch.save(build_feature_extractor("resnet18", weights="none").model.state_dict(), weights)
    reads: list[Path] = []

    def counted_open(path, *args, **kwargs):  # every file the hashing module reads
        reads.append(Path(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(hashing, "open", counted_open, raising=False)
    argv = ["-q", "embed", str(image_folder), "--cache", str(tmp_path / "c"), *TINY[:2], "--weights", str(weights),
            *TINY[4:]]
    assert main(argv) == 0
    assert reads.count(weights) == 1
    state = build_feature_extractor("resnet18", weights="none").model.state_dict()
    state["conv1.weight"] = state["conv1.weight"] * 0.5  # other weights, same file size
    torch.save(state, weights)
    assert main(argv) == 0
    assert reads.count(weights) == 2
    assert len(list_embedding_sets(tmp_path / "c")) == 2  # new weights, new vectors


def test_the_torch_free_answer_gives_way_to_any_change(image_folder: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "c"
    argv = ["-q", "embed", str(image_folder), "--cache", str(cache), *TINY]

    def request() -> dict | None:
        return reuse.embed_request(str(image_folder), backbone="resnet18", weights="none", image_size=32,
                                   precision="fp32", device="cpu", tta="none")

    assert main(argv) == 0
    key = list_embedding_sets(cache)[0]
    assert reuse.find_up_to_date_set(cache, request()).key == key
    # a file moved to another class: its label changes, so the model path republishes the set
    source_dir, target_dir = sorted(d for d in image_folder.iterdir() if d.is_dir())[:2]
    moved = sorted(source_dir.iterdir())[0]
    moved = moved.rename(target_dir / f"moved-{moved.name}")
    assert reuse.find_up_to_date_set(cache, request()) is None
    assert main(argv) == 0
    labels = load_embeddings(cache)
    assert labels.class_names[labels.labels[list(labels.sample_ids).index(f"{target_dir.name}/{moved.name}")]] \
        == target_dir.name
    assert reuse.find_up_to_date_set(cache, request()) is not None
    # damaged vectors: not answered from the cache, repaired by the ordinary path
    features = cache / "embeddings" / key / "features.npy"
    features.write_bytes(features.read_bytes()[:-64] + b"\0" * 64)
    assert reuse.find_up_to_date_set(cache, request()) is None
    assert main(argv) == 0 and load_embeddings(cache).features.shape == (12, 512)
    # another torch, other settings, a damaged request file: never answered from the cache
    monkeypatch.setattr(reuse.metadata, "version", lambda name: "0.0-other")
    assert reuse.find_up_to_date_set(cache, request()) is None
    monkeypatch.undo()
    assert reuse.embed_request(str(image_folder), backbone="resnet18", weights="none", image_size=64,
                               precision="fp32", device="cpu", tta="none") != request()
    assert reuse.embed_request(str(image_folder), backbone="resnet18", weights="none", image_size=32,
                               precision="fp32", device="cuda", tta="none") is None
    (cache / reuse.REQUESTS_FILE).write_text("{not json", encoding="utf-8")
    assert reuse.find_up_to_date_set(cache, request()) is None
    capsys.readouterr()
    assert main(argv) == 0 and "(0 newly computed)" in capsys.readouterr().out
    assert json.loads((cache / reuse.REQUESTS_FILE).read_text(encoding="utf-8"))  # written anew


def test_embed_reports_skipped_files(image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (image_folder / "dog" / "broken.png").write_bytes(b"\x89PNG garbage")
    assert main(["-q", "embed", str(image_folder), "--cache", str(tmp_path / "c"), *TINY]) == 0
    assert "1 skipped (see" in capsys.readouterr().out
    assert "broken.png" in (tmp_path / "c" / "errors.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("source", "overrides", "message"),
    [
        ("MISSING", {}, "does not exist"),
        (None, {}, "give a SOURCE"),
        ("DATA", {"--weights": "WEIGHTS"}, "does not fit resnet18"),
        ("DATA", {"--device": "tpu9"}, "unknown device"),
        (None, {"--features": "X"}, "go together"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture, source: str | None, overrides: dict,
    message: str,
) -> None:
    import torch

    torch.save({"bogus.weight": torch.zeros(1)}, tmp_path / "w.pth")
    paths = {"MISSING": str(tmp_path / "missing"), "DATA": str(image_folder), "WEIGHTS": str(tmp_path / "w.pth"),
             "X": str(tmp_path / "x.npy")}
    options = dict(zip(TINY[::2], TINY[1::2]))
    options.update({flag: paths.get(value, value) for flag, value in overrides.items()})
    argv = ["-q", "embed", *([paths[source]] if source else []), "--cache", str(tmp_path / "c")]
    argv += [item for pair in options.items() for item in pair]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("coreclean embed: error:")


def test_embed_own_features(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    np.save(tmp_path / "x.npy", np.eye(3, dtype=np.float32))
    (tmp_path / "m.csv").write_text("path,label\nno/such/a.jpg,a\nb.jpg,b\nc.jpg,a\n", encoding="utf-8")
    code = main(["embed", "--features", str(tmp_path / "x.npy"), "--manifest", str(tmp_path / "m.csv"),
                 "--cache", str(tmp_path / "c"), "--name", "clip"])
    assert code == 0
    assert "stored 3 vectors of dimension 3" in capsys.readouterr().out
    np.testing.assert_array_equal(load_embeddings(tmp_path / "c").features, np.eye(3))


def test_own_features_with_nan_fail_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    np.save(tmp_path / "x.npy", np.array([[np.nan, 1.0]]))
    (tmp_path / "m.csv").write_text("path,label\na.jpg,a\n", encoding="utf-8")
    code = main(["embed", "--features", str(tmp_path / "x.npy"), "--manifest", str(tmp_path / "m.csv"),
                 "--cache", str(tmp_path / "c")])
    assert code == 2 and "NaN" in capsys.readouterr().err
