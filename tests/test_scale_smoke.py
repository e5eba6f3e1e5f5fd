"""Keep ``python -m benchmarks.scale`` working: one tiny size, end to end, in a subprocess per size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_scale_benchmark_tiny(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    command = [sys.executable, "-m", "benchmarks.scale", "--sizes", "3000", "--out", str(out),
               "--work", str(tmp_path / "work"), "--threads", "1"]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["machine"]["cores"] >= 1 and len(result["machine"]["load_average_at_start"]) == 3
    assert "git" in result
    assert result["command"].startswith("python -m benchmarks.scale --sizes 3000")
    (run,) = result["runs"]
    assert run["n_samples"] == 3000 and "error" not in run
    assert run["fit_seconds"] > 0 and run["rescore_seconds"] > 0
    assert {"projection", "out_of_fold", "neighbors"} <= set(run["fit_timings"])
    assert "out_of_fold_update" in run["rescore_timings"]
    assert sum(run["batch"].values()) == 50
    assert 0 < run["peak_anon_gib"] <= run["peak_rss_gib"] <= run["peak_rss_gib_total"] < 4
    assert run["spearman"] > 0.9 and run["auroc"] > 0.7
    assert run["engine"] == "local" and run["threads"] == 1 and run["thread_setting"] == 1
    peer = run["peer"]
    assert peer["fit_seconds"] > 0 and peer["threads"] == 1 and peer["auroc"] > 0.7 and peer["peak_rss_gib"] > 0
    (summary,) = result["summary"]
    assert summary["ratio_coreclean_to_peer"] == run["fit_seconds"] / peer["fit_seconds"]
    # the generated matrix is reused, not regenerated
    assert (tmp_path / "work").is_dir() and len(list((tmp_path / "work").rglob("features.npy"))) == 1
