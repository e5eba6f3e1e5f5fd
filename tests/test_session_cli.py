"""`coreclean session ...` headless: start, next (CSV + PNG), apply, status, export, undo."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_feature_cache as make_cache

from coreclean.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_headless_session(tmp_path, capsys):
    cache, manifest, true, noisy = make_cache(tmp_path, n_per_class=80)
    session = tmp_path / "cat.session"
    common = ["--session", str(session), "--threads", "1"]
    assert main(["session", "start", "--cache", str(cache), "--class", "cat", "--batch", "10", *common]) == 0
    started = capsys.readouterr()
    assert "baseline" in started.out
    assert "--batch is renamed --per-class" in started.err  # the old spelling still works, and says so
    review = tmp_path / "review"
    assert main(["session", "next", *common, "--out", str(review)]) == 0
    out = capsys.readouterr().out
    sheet = pd.read_csv(review / "round-1.csv", dtype=str, keep_default_na=False)
    assert list(sheet.columns) == ["id", "path", "label", "suggested_label", "suggested_prob", "score", "action",
                                   "new_label"]
    assert len(sheet) == 10 and (review / "round-1.png").stat().st_size > 1000 and "round 1" in out
    # the reviewer fills in the sheet with the truth
    index = {f"img/{i:04d}.png": i for i in range(true.size)}
    truth = [["cat", "dog", "fox"][true[index[i]]] for i in sheet["id"]]
    wrong = sheet["label"] != pd.Series(truth)
    sheet["action"] = ["relabel" if w else "keep" for w in wrong]
    sheet["new_label"] = [t if w else "" for t, w in zip(truth, wrong)]
    bad = sheet.copy()
    bad.loc[0, "new_label"], bad.loc[0, "action"] = "wolf", "relabel"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert main(["session", "apply", *common, str(tmp_path / "bad.csv")]) == 2
    assert "unknown label 'wolf'" in capsys.readouterr().err
    sheet.to_csv(tmp_path / "decisions.csv", index=False)
    assert main(["session", "apply", *common, str(tmp_path / "decisions.csv"), "--reviewer", "me"]) == 0
    out = capsys.readouterr().out
    assert "round 1 closed" in out and "verdict:" in out
    # the round's report ends on what to run next, and it runs as printed (apply used to stop at the verdict)
    then = out.strip().splitlines()[-1]
    assert then.startswith(("next: coreclean session next --session", "export: coreclean session export --session"))
    assert main([*shlex.split(then.split(": ", 1)[1].split(" (")[0])[1:], "--threads", "1", "--out", str(review)]) == 0
    capsys.readouterr()
    assert main(["session", "status", *common]) == 0
    out = capsys.readouterr().out
    assert "hit_rate" in out and Path(str(session).replace(".session", "-rounds.png")).is_file()
    assert main(["session", "export", *common, "--out", str(tmp_path / "export")]) == 0
    capsys.readouterr()
    cleaned = pd.read_csv(tmp_path / "export" / "manifest.csv")
    assert (cleaned["label"] != pd.read_csv(manifest)["label"]).sum() == int(wrong.sum())
    assert main(["session", "undo", *common]) == 2  # nothing in the open round
    assert "coreclean session undo --session FILE --round" in capsys.readouterr().err  # CLI flags, not the Python API
    assert main(["session", "undo", "--round", *common]) == 0
    assert "round 1 is open" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    cache = make_cache(tmp_path, n_per_class=30)[0]
    assert main(["session", "start", "--cache", str(cache), "--class", "cow", "--session", str(tmp_path / "x")]) == 2
    assert "no class 'cow'" in capsys.readouterr().err
    assert main(["session", "next", "--session", str(tmp_path / "missing.session")]) == 2
    assert "no session file" in capsys.readouterr().err
    assert main(["session", "start", "--cache", str(cache), "--class", "fox", "--no-evaluate", "--threads", "1"]) == 0
    assert (cache / "sessions" / "fox.session").is_file()
    capsys.readouterr()
