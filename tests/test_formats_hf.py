"""The cleaned dataset saved for Hugging Face datasets loads back with its images and ClassLabel."""

import pandas as pd
import pytest
from PIL import Image

from coreclean.exceptions import ManifestError
from coreclean.formats.hf import export_hf


def test_hf_dataset_loads_back_without_the_dropped(tmp_path):
    datasets = pytest.importorskip("datasets")
    paths = []
    for i, colour in enumerate(["red", "green", "blue"]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (4, 4), colour).save(paths[-1])
    table = pd.DataFrame({"id": ["c", "a", "b"], "path": [str(p) for p in paths], "label": ["dog", "cat", "dog"],
                          "original_label": ["cat", "cat", "dog"], "weight": [1.0, 1.0, 0.0]})
    out = export_hf(table, tmp_path / "hf", class_names=["cat", "dog"])
    for p in paths:
        p.unlink()  # the saved dataset must carry the images itself
    data = datasets.load_from_disk(str(out))
    assert data.features["label"].names == ["cat", "dog"]
    assert data["id"] == ["a", "c"] and data["label"] == [0, 1] and data["original_label"] == ["cat", "cat"]
    assert data[1]["image"].getpixel((0, 0)) == (255, 0, 0)
    with pytest.raises(ManifestError, match="not empty"):
        export_hf(table, out, class_names=["cat", "dog"])


@pytest.mark.usefixtures("one_thread")
def test_session_export_hf_says_when_images_are_missing(tmp_path, capsys):
    from conftest import make_feature_cache

    from coreclean.cli import main

    cache, *_ = make_feature_cache(tmp_path, n_per_class=20)  # its image paths do not exist
    common = ["--session", str(tmp_path / "s.session"), "--threads", "1"]
    assert main(["session", "start", "--cache", str(cache), "--class", "cat", *common]) == 0
    assert main(["session", "export", *common, "--out", str(tmp_path / "hf"), "--format", "hf"]) == 2
    assert "image file(s) are missing" in capsys.readouterr().err
