"""Label Studio tasks out (checked by the label-studio-sdk's own config parser) and reviewed exports back."""

import json

import pandas as pd
import pytest

from coreclean.exceptions import DecisionError, ManifestError
from coreclean.formats.label_studio import export_label_studio, read_label_studio_export

CLASSES = ["cat", "dog", "bird & fish"]


def _table():
    return pd.DataFrame({"id": ["a/1.jpg", "b 2.jpg", "c.jpg", "d.jpg"], "label": ["cat", "dog", "cat", "dog"],
                         "score": [0.2, 0.9, 5.0, 0.5],
                         "suggested_label": ["dog", "dog", "bird & fish", "cat"]})


def test_tasks_are_sorted_by_score_and_valid_for_label_studio(tmp_path):
    li_module = pytest.importorskip("label_studio_sdk.label_interface")
    paths = export_label_studio(_table(), tmp_path, image_root_url="http://127.0.0.1:8000/img/", class_names=CLASSES)
    tasks = json.loads(paths["tasks"].read_text())
    assert [t["meta"]["id"] for t in tasks] == ["c.jpg", "b 2.jpg", "d.jpg", "a/1.jpg"]
    assert tasks[1]["data"] == {"image": "http://127.0.0.1:8000/img/b%202.jpg", "given_label": "dog"}
    assert [t["meta"]["score"] for t in tasks] == [5.0, 0.9, 0.5, 0.2]
    assert [t["predictions"][0]["score"] for t in tasks] == [1.0, 0.75, 0.5, 0.25]  # Label Studio wants [0, 1]
    li = li_module.LabelInterface(paths["config"].read_text())
    assert li.get_control("label").labels == CLASSES
    for task in tasks:
        # validate_task() of label-studio-sdk 2.1.2 crashes on tasks with predictions: check the data alone
        assert li.validate_task({"data": task["data"]})
        assert li.validate_prediction(task["predictions"][0], return_errors=True) == []


def test_top_limits_tasks_and_refuses_overwrite(tmp_path):
    export_label_studio(_table(), tmp_path, image_root_url="u/", class_names=CLASSES, top=1)
    assert [t["meta"]["id"] for t in json.loads((tmp_path / "tasks.json").read_text())] == ["c.jpg"]
    with pytest.raises(ManifestError, match="new folder"):
        export_label_studio(_table(), tmp_path, image_root_url="u/", class_names=CLASSES)


def test_reviewed_export_becomes_decisions(tmp_path):
    export_label_studio(_table(), tmp_path, image_root_url="u/", class_names=CLASSES)
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    choice = {"b 2.jpg": "dog", "d.jpg": "bird & fish"}  # a/1.jpg left unannotated
    for task in tasks:
        if task["meta"]["id"] in choice:
            task["annotations"] = [{"completed_by": {"email": "ann@x"}, "was_cancelled": False, "result": [
                {"from_name": "label", "to_name": "image", "type": "choices",
                 "value": {"choices": [choice[task["meta"]["id"]]]}}]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    got = read_label_studio_export(tmp_path / "export.json")
    assert got.to_dict("records") == [
        {"id": "b 2.jpg", "action": "keep", "new_label": "", "reviewer": "ann@x"},
        {"id": "d.jpg", "action": "relabel", "new_label": "bird & fish", "reviewer": "ann@x"}]


def test_bad_export_is_a_clear_error(tmp_path):
    (tmp_path / "x.json").write_text('{"not": "a list"}')
    with pytest.raises(DecisionError, match="export the project as JSON"):
        read_label_studio_export(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('[{"data": {}}]')
    with pytest.raises(DecisionError, match="meta.id"):
        read_label_studio_export(tmp_path / "y.json")
