"""`coreclean session export --format fiftyone` and `session apply --from fiftyone`, round trip on a real FiftyOne
database (a mongod of the tests' own, on 127.0.0.1: the ``fiftyone_database`` fixture)."""

from __future__ import annotations

import sys

import pytest
from conftest import FEATURE_CLASS_NAMES as NAMES
from conftest import make_feature_cache as make_cache

from coreclean.cli import main
from coreclean.sessions.session import CleaningSession

pytestmark = pytest.mark.usefixtures("one_thread")


def _start(tmp_path, name: str) -> tuple[list[str], object]:
    cache, _, true, _ = make_cache(tmp_path, n_per_class=40)
    common = ["--session", str(tmp_path / f"{name}.session"), "--threads", "1"]
    assert main(["session", "start", "--cache", str(cache), "--class", "cat", "--per-class", "8", "--no-evaluate",
                 *common]) == 0
    return common, true


def test_fiftyone_round_trip(tmp_path, capsys, fiftyone_database):
    fo = fiftyone_database
    common, true = _start(tmp_path, "trip")
    out = tmp_path / "fo"
    assert main(["session", "export", *common, "--out", str(out), "--format", "fiftyone",
                 "--dataset-name", "trip"]) == 0
    printed = capsys.readouterr().out
    assert "FiftyOne dataset: trip (120 samples, 8 tagged needs-review)" in printed
    assert 'fo.launch_app(fo.load_dataset(\'trip\')).wait()' in printed
    assert (out / "open_fiftyone.py").read_text().startswith("import fiftyone as fo\n")
    with CleaningSession.open(tmp_path / "trip.session") as s:
        batch = s.next_batch()
        paths = dict(zip(s.sample_ids.astype(str), s.paths.astype(str)))
    dataset = fo.load_dataset("trip")
    assert dataset.persistent and len(dataset) == 120
    assert sorted(dataset.values("filepath")) == sorted(paths.values())
    flagged = dataset.match_tags("needs-review")
    assert sorted(flagged.values("coreclean_id")) == sorted(batch["id"])
    shown = batch.set_index("id")
    for sample in flagged:
        row = shown.loc[sample.coreclean_id]
        assert sample.filepath == paths[sample.coreclean_id]
        assert sample.ground_truth.label == row["label"] == "cat"
        assert sample.coreclean_suggestion.label == row["suggested_label"]
        assert sample.coreclean_suggestion.confidence == pytest.approx(row["suggested_prob"])
        assert sample.coreclean_score == pytest.approx(row["score"])
        assert sample.coreclean_decision is None and sample.coreclean_weight == 1.0
    assert set(dataset.match_tags("needs-review", bool=False).values("coreclean_score")) != {None}

    # the reviewer: true class on the first three, then a drop, a skip and a downweight (to 0.3) tag; the rest
    # unreviewed (no label)
    ids = list(batch["id"])
    index = {f"img/{i:04d}.png": i for i in range(true.size)}
    for sample_id in ids[:3]:
        sample = dataset.match({"coreclean_id": sample_id}).first()
        sample.ground_truth = fo.Classification(label=NAMES[true[index[sample_id]]])
        sample.save()
    dataset.select_by("coreclean_id", [ids[3]]).tag_samples("drop")
    dataset.select_by("coreclean_id", [ids[4]]).tag_samples("skip")
    lighter = dataset.select_by("coreclean_id", [ids[5]])
    lighter.tag_samples("downweight")
    lighter.set_values("coreclean_weight", [0.3])
    dataset.select_by("coreclean_id", ids[6:]).set_field("ground_truth", None).save()
    capsys.readouterr()
    assert main(["session", "apply", *common, "--from", "fiftyone", "trip", "--reviewer", "ana", "--no-close"]) == 0
    printed = capsys.readouterr().out
    assert "recorded 6 new decision(s)" in printed and "1 drop" in printed and "1 skip" in printed
    with CleaningSession.open(tmp_path / "trip.session") as s:
        decided = s.decisions().set_index("id")
        labels = dict(zip(s.sample_ids.astype(str), (NAMES[k] for k in s.labels)))
    expected = ({i: "keep" if NAMES[true[index[i]]] == "cat" else "relabel" for i in ids[:3]}
                | {ids[3]: "drop", ids[4]: "skip", ids[5]: "downweight"})
    assert decided["action"].to_dict() == expected
    assert decided.loc[ids[5], "weight"] == pytest.approx(0.3)
    assert set(decided["reviewer"]) == {"ana"}
    assert all(labels[i] == NAMES[true[index[i]]] for i in ids[:3])

    # exported again, untouched, the dataset carries those decisions and reads back as the same ones
    assert main(["session", "export", *common, "--out", str(out), "--format", "fiftyone",
                 "--dataset-name", "trip"]) == 0
    dataset = fo.load_dataset("trip")
    assert len(dataset) == 120
    assert [dataset.match_tags(t).values("coreclean_id") for t in ("drop", "skip", "downweight")] == [[i] for i in ids[3:6]]
    decisions = dict(zip(*dataset.match_tags("needs-review").values(["coreclean_id", "coreclean_decision"])))
    assert {i: decisions[i] for i in expected} == expected
    capsys.readouterr()
    assert main(["session", "apply", *common, "--from", "fiftyone", "trip", "--no-close"]) == 0
    assert f"recorded {len(ids) - 6} new decision(s)" in capsys.readouterr().out  # the rest: their label = keep


def test_fiftyone_missing_names_the_extra(tmp_path, capsys, monkeypatch):
    common, _ = _start(tmp_path, "none")
    monkeypatch.setitem(sys.modules, "fiftyone", None)  # as if not installed
    assert main(["session", "export", *common, "--out", str(tmp_path / "fo"), "--format", "fiftyone"]) == 2
    assert "pip install 'coreclean[fiftyone]'" in capsys.readouterr().err
    assert main(["session", "apply", *common, "--from", "fiftyone", "anything"]) == 2
    assert "pip install 'coreclean[fiftyone]'" in capsys.readouterr().err


def test_fiftyone_unknown_class_records_nothing(tmp_path, capsys, fiftyone_database):
    fo = fiftyone_database
    common, _ = _start(tmp_path, "bad")
    assert main(["session", "export", *common, "--out", str(tmp_path / "fo"), "--format", "fiftyone",
                 "--dataset-name", "bad"]) == 0
    dataset = fo.load_dataset("bad")
    flagged = dataset.match_tags("needs-review")
    first = flagged.first()
    first.ground_truth = fo.Classification(label="wolf")
    first.save()
    flagged.skip(1).limit(1).tag_samples("drop")
    with CleaningSession.open(tmp_path / "bad.session") as s:
        open_round = s.round
    capsys.readouterr()
    assert main(["session", "apply", *common, "--from", "fiftyone", "bad"]) == 2
    err = capsys.readouterr().err
    assert f"{first.coreclean_id!r} is labelled 'wolf'" in err and "nothing was recorded" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["session", "apply", *common, "--from", "fiftyone", "nope"]) == 2
    assert "no FiftyOne dataset named 'nope'" in capsys.readouterr().err
    assert main(["session", "apply", *common, "--from", "fiftyone", "bad", "--field", "coreclean_score"]) == 2
    assert "pass --field one of" in capsys.readouterr().err
    with CleaningSession.open(tmp_path / "bad.session") as s:
        assert s.decisions().empty and s.round == open_round
    theirs = fo.Dataset("theirs")
    theirs.add_sample(fo.Sample(filepath=str(tmp_path / "x.png"), ground_truth="cat"))
    assert main(["session", "export", *common, "--out", str(tmp_path / "fo"), "--format", "fiftyone",
                 "--dataset-name", "theirs"]) == 2
    assert "['ground_truth'] that are not Classifications" in capsys.readouterr().err
    assert len(theirs) == 1
