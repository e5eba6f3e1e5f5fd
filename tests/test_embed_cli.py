"""Tests for ``coreclean embed``: exit codes, one-line errors, both input modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coreclean import load_embeddings
from coreclean.cli import main

TINY = ["--backbone", "resnet18", "--weights", "none", "--image-size", "32", "--device", "cpu",
        "--workers", "0", "--precision", "fp32"]


def test_embed_folder(image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["-q", "embed", str(image_folder), "--cache", str(tmp_path / "c"), *TINY]) == 0
    assert "embedded 12 images (12 newly computed)" in capsys.readouterr().out
    assert main(["-q", "embed", str(image_folder), "--cache", str(tmp_path / "c"), *TINY]) == 0
    assert "(0 newly computed)" in capsys.readouterr().out
    assert load_embeddings(tmp_path / "c").features.shape == (12, 512)


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
