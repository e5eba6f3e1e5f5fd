"""Tests for ``coreclean rank``: cache and bring-your-own inputs, filters, summary, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coreclean.embedding.own_features import write_feature_cache
from coreclean.cli import main

CLASS_NAMES = ["cat", "dog", "fox"]
COLUMNS = ["id", "label", "score", "rank_in_class", "suggested_label", "suggested_prob", "predicted_label",
           "predicted_confidence", "margin", "given_label_prob"]


def make_data(n_per_class: int = 60, n_features: int = 8, n_flipped: int = 12, seed: int = 0):
    """Three separated Gaussian classes with ``n_flipped`` labels moved to the next class."""
    rng = np.random.default_rng(seed)
    true = np.repeat(np.arange(3), n_per_class)
    centers = rng.normal(size=(3, n_features)) * 2.5
    features = (centers[true] + rng.normal(size=(true.size, n_features))).astype(np.float32)
    noisy = true.copy()
    flipped = rng.choice(true.size, n_flipped, replace=False)
    noisy[flipped] = (noisy[flipped] + 1) % 3
    return features, true, noisy, flipped


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def cache(data, tmp_path_factory):
    features, _, noisy, _ = data
    root = tmp_path_factory.mktemp("rank")
    manifest = root / "manifest.csv"
    pd.DataFrame({"path": [f"img/{i:04d}.png" for i in range(noisy.size)],
                  "label": [CLASS_NAMES[k] for k in noisy]}).to_csv(manifest, index=False)
    write_feature_cache(root / "cache", features, manifest, name="toy")
    return root / "cache"


def rank(*argv: str) -> int:
    return main(["-q", "rank", "--threads", "1", "--neighbors", "5", "--components", "4", *argv])


def test_rank_cache(cache: Path, data, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, true, noisy, flipped = data
    out = tmp_path / "ranking.csv"
    assert rank("--cache", str(cache), "--out", str(out), "--random-state", "3") == 0
    printed = capsys.readouterr().out
    frame = pd.read_csv(out, dtype={"id": str})
    assert list(frame.columns[: len(COLUMNS)]) == COLUMNS
    assert len(frame) == noisy.size and frame["score"].is_monotonic_decreasing
    assert set(frame["label"]) == set(CLASS_NAMES) and set(frame["suggested_label"]) <= set(CLASS_NAMES)
    # ids are the manifest's ids; the planted errors come first
    flipped_ids = {f"img/{i:04d}.png" for i in flipped}
    assert set(frame["id"]) == {f"img/{i:04d}.png" for i in range(noisy.size)}
    assert len(flipped_ids & set(frame["id"].head(flipped.size))) >= 0.75 * flipped.size
    top = frame.iloc[0]
    index = int(top["id"][4:8])
    assert top["label"] == CLASS_NAMES[noisy[index]] and top["suggested_label"] == CLASS_NAMES[true[index]]
    for _, group in frame.groupby("label"):
        assert list(group["rank_in_class"]) == list(range(1, len(group) + 1))
    # summary: one line per class with n and estimated errors
    for name in CLASS_NAMES:
        line = next(line for line in printed.splitlines() if line.strip().startswith(name))
        assert f" {int((noisy == CLASS_NAMES.index(name)).sum())} " in line
    assert "est_errors" in printed and f"-> {out}" in printed
    # same seed, same ranking
    again = tmp_path / "again.csv"
    assert rank("--cache", str(cache), "--out", str(again), "--seed", "3") == 0  # the new name of --random-state
    pd.testing.assert_frame_equal(pd.read_csv(again, dtype={"id": str}), frame)


def test_rank_class_top_method(cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "dog.csv"
    assert rank("--cache", str(cache), "--out", str(out), "--class", "dog", "--top", "7",
                "--method", "knn_disagreement") == 0
    frame = pd.read_csv(out)
    assert len(frame) == 7 and set(frame["label"]) == {"dog"} and list(frame["rank_in_class"]) == list(range(1, 8))
    summary = capsys.readouterr().out
    table = summary.split("ranked")[0].strip().splitlines()
    assert len(table) == 2 and table[1].split()[0] == "dog" and ("-> cat" in table[1] or "-> fox" in table[1])


@pytest.mark.parametrize("labels_kind", ["names_csv", "id_label_csv", "int_npy", "int_csv"])
def test_rank_own_features(data, tmp_path: Path, capsys: pytest.CaptureFixture, labels_kind: str) -> None:
    features, _, noisy, flipped = data
    np.save(tmp_path / "x.npy", features)
    names = np.array(CLASS_NAMES)[noisy]
    labels = {"names_csv": tmp_path / "labels.csv", "id_label_csv": tmp_path / "labels.csv",
              "int_npy": tmp_path / "labels.npy", "int_csv": tmp_path / "labels.csv"}[labels_kind]
    if labels_kind == "names_csv":
        pd.DataFrame({"label": names}).to_csv(labels, index=False)
    elif labels_kind == "id_label_csv":
        pd.DataFrame({"id": [f"s{i}" for i in range(noisy.size)], "label": names}).to_csv(labels, index=False)
    elif labels_kind == "int_npy":
        np.save(labels, noisy)
    else:
        labels.write_text("\n".join(str(k) for k in noisy) + "\n", encoding="utf-8")  # no header
    out = tmp_path / "ranking.csv"
    assert rank("--features", str(tmp_path / "x.npy"), "--labels", str(labels), "--out", str(out)) == 0
    capsys.readouterr()
    frame = pd.read_csv(out, dtype={"id": str, "label": str, "suggested_label": str})
    expected_names = CLASS_NAMES if "names" in labels_kind or "id_label" in labels_kind else ["0", "1", "2"]
    assert set(frame["label"]) == set(expected_names)
    ids = [f"s{i}" for i in flipped] if labels_kind == "id_label_csv" else [str(i) for i in flipped]
    assert len(set(ids) & set(frame["id"].head(flipped.size))) >= 0.75 * flipped.size
    row = frame.set_index("id").loc[ids[0]]
    assert row["label"] == expected_names[noisy[flipped[0]]]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bad_npy", "cannot read"),
        ("nan_rows", "NaN or infinite"),
        ("mismatch", "has 179 labels but"),
        ("unknown_class", "no class 'cow'"),
        ("unknown_method", "unknown method 'magic'"),
        ("one_d_features", "2-D numeric array"),
        ("both_inputs", "not both"),
        ("no_input", "give --cache DIR"),
        ("empty_cache", "no embedding set"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(data, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                               case: str, message: str) -> None:
    features, _, noisy, _ = data
    x, labels = tmp_path / "x.npy", tmp_path / "labels.npy"
    np.save(x, features)
    np.save(labels, noisy)
    argv = ["--features", str(x), "--labels", str(labels)]
    if case == "bad_npy":
        x.write_bytes(b"not a numpy file")
    elif case == "nan_rows":
        broken = features.copy()
        broken[[5, 9], 2] = np.nan
        np.save(x, broken)
    elif case == "mismatch":
        np.save(labels, noisy[:-1])
    elif case == "unknown_class":
        argv = ["--cache", str(cache), "--class", "cow"]
    elif case == "unknown_method":
        argv += ["--method", "magic"]
    elif case == "one_d_features":
        np.save(x, features[:, 0])
    elif case == "both_inputs":
        argv += ["--cache", str(cache)]
    elif case == "no_input":
        argv = []
    elif case == "empty_cache":
        argv = ["--cache", str(tmp_path / "nothing")]
    out = tmp_path / "ranking.csv"
    assert rank(*argv, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("coreclean rank: error:"), err
    assert not out.exists()


def test_unset_settings_are_the_rankers_own_defaults(cache: Path, tmp_path: Path, monkeypatch) -> None:
    import inspect

    import coreclean.scoring.ranker as importance

    seen = []

    class Recording(importance.LabelIssueRanker):
        def fit(self, *args, **kwargs):
            seen.append(self)
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(importance, "LabelIssueRanker", Recording)
    assert main(["-q", "rank", "--threads", "1", "--cache", str(cache), "--out", str(tmp_path / "r.csv")]) == 0
    defaults = inspect.signature(importance.LabelIssueRanker.__init__).parameters
    for name in ("n_folds", "n_neighbors", "n_components"):
        assert getattr(seen[0], name) == defaults[name].default
    assert main(["-q", "rank", "--threads", "1", "--cache", str(cache), "--out", str(tmp_path / "r.csv"),
                 "--components", "0", "--neighbors", "5"]) == 0
    assert seen[1].n_components is None and seen[1].n_neighbors == 5
