"""`coreclean demo`: offline, real images through the real embed path, coreclean vs random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coreclean.demo import choose_backbone, run_demo, write_digits

pytestmark = pytest.mark.usefixtures("one_thread")


def test_write_digits_plants_errors_in_folders(tmp_path):
    truth = write_digits(tmp_path / "data", noise_rate=0.1, image_size=16)
    assert len(truth) == 1797 and truth["flipped"].sum() == 180
    assert (truth["id"].str.split("/").str[0] == truth["given_label"]).all()
    assert (tmp_path / "data" / truth["id"][0]).is_file()


def test_demo_runs_offline_and_beats_random(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "no-hub"))  # nothing cached: no ResNet weights
    backbone, weights, _, note = choose_backbone()
    assert backbone in ("pixels", "resnet18") and "never downloads" in note
    rounds_seen = []
    # until the pixels backbone lands, run the real embed path with a random-init ResNet18 at 32 px
    result = run_demo(tmp_path / "demo", backbone=None if backbone == "pixels" else "resnet18",
                      weights=None if backbone == "pixels" else "none", n_rounds=2, batch_size=10,
                      progress=False, on_round=lambda name, r: rounds_seen.append((name, r.round)))
    assert rounds_seen == [("coreclean", 1), ("coreclean", 2), ("random", 1), ("random", 2)]
    table = result.comparison
    assert list(table["reviewed"]) == [0, 30, 60]
    assert (table["coreclean_found"].iloc[1:] > table["random_found"].iloc[1:]).all(), table
    for key in ("comparison_plot", "coreclean_rounds_plot", "contact_sheet"):
        assert result.paths[key].stat().st_size > 1000
    labels = pd.read_csv(result.paths["export"] / "labels.csv")
    assert int(labels["changed"].sum()) == int(table["coreclean_found"].iloc[-1])
    assert np.isfinite(result.rounds["coreclean"]["auroc"]).all()
