"""`coreclean session export --format label-studio` and `session apply --from label-studio`, round trip."""

from __future__ import annotations

import json

import pytest
from conftest import make_feature_cache as make_cache

from coreclean.cli import main
from coreclean.sessions.session import CleaningSession

pytestmark = pytest.mark.usefixtures("one_thread")


def test_label_studio_round_trip(tmp_path, capsys):
    cache, _, true, noisy = make_cache(tmp_path, n_per_class=40)
    session = tmp_path / "s.session"
    common = ["--session", str(session), "--threads", "1"]
    assert main(["session", "start", "--cache", str(cache), "--class", "cat", "--per-class", "5", *common]) == 0
    out = tmp_path / "ls"
    assert main(["session", "export", *common, "--out", str(out), "--format", "label-studio"]) == 2
    assert "--image-root-url" in capsys.readouterr().out
    assert main(["session", "export", *common, "--out", str(out), "--format", "label-studio",
                 "--image-root-url", "http://127.0.0.1:8081/"]) == 0
    tasks = json.loads((out / "tasks.json").read_text())
    capsys.readouterr()
    assert main(["session", "apply", *common, "--from", "label-studio", str(out / "tasks.json")]) == 1  # none annotated
    assert "Annotate the tasks in Label Studio" in capsys.readouterr().out
    scores = [t["meta"]["score"] for t in tasks]
    with CleaningSession.open(session) as s:
        batch = s.next_batch()
    assert sorted(t["meta"]["id"] for t in tasks) == sorted(batch["id"]) and len(tasks) > 1
    assert scores == sorted(scores, reverse=True)
    # the annotator picks the true class of each task
    names = ["cat", "dog", "fox"]
    index = {f"img/{i:04d}.png": i for i in range(true.size)}
    for task in tasks:
        truth = names[true[index[task["meta"]["id"]]]]
        task["annotations"] = [{"completed_by": 7, "result": [
            {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [truth]}}]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    capsys.readouterr()
    assert main(["session", "apply", *common, "--from", "label-studio", str(tmp_path / "export.json"),
                 "--no-close"]) == 0
    assert f"recorded {len(tasks)} new decision(s)" in capsys.readouterr().out
    with CleaningSession.open(session) as s:
        decided = s.decisions().set_index("id")
    expected = {t["meta"]["id"]: ("keep" if names[true[index[t["meta"]["id"]]]] == t["data"]["given_label"]
                                  else "relabel") for t in tasks}
    assert decided.loc[list(expected), "action"].to_dict() == expected
    assert set(decided["reviewer"].astype(str)) == {"7"}
