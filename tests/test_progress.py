"""Progress lines: phase names and a live clock on a terminal, nothing on a pipe."""

from __future__ import annotations

import io
import re
import time

import pytest

from coreclean._internal import progress as progress_module
from coreclean._internal.progress import Progress, count_bar, progress_enabled
from coreclean.cli import main
from conftest import make_feature_cache as make_cache


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_when_not_a_terminal():
    stream = io.StringIO()
    assert not progress_enabled(stream)
    with Progress("rank", phases=["loading", "ranking"], stream=stream) as progress:
        with progress.phase("loading"):
            pass
        with progress.phase("ranking"):
            pass
    assert stream.getvalue() == "" and progress.done == 2


def test_a_count_in_a_log_writes_a_plain_line_a_minute(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()
    with count_bar(3000, "embedding", stream=stream) as bar:
        for _ in range(30):  # 30 batches of 100, 5 s each: 150 s in all
            clock[0] += 5.0
            bar.update(100)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 3  # at 60 s, at 120 s, and where it ended
    assert lines[0] == "embedding: 1,200 / 3,000 img (40%), 20.0 img/s, ~90 s left"
    assert lines[-1].startswith("embedding: 3,000 / 3,000 img (100%)")
    quiet, short = io.StringIO(), io.StringIO()
    with count_bar(10, "embedding", enabled=False, stream=quiet) as bar:
        clock[0] += 600.0
        bar.update(10)
    with count_bar(10, "embedding", stream=short) as bar:
        bar.update(10)
    assert quiet.getvalue() == "" and short.getvalue() == ""  # off, or too short to report
    on_terminal = _Terminal()
    with count_bar(10, "embedding", stream=on_terminal) as bar:
        bar.update(10)
    assert "10/10" in on_terminal.getvalue()


def test_phases_bar_and_done_line_on_a_terminal(monkeypatch):
    monkeypatch.setattr(progress_module, "QUIET_SECONDS", 0.0)
    stream = _Terminal()
    assert progress_enabled(stream)
    with Progress("classes", phases=2, stream=stream) as progress:
        with progress.phase("loading embeddings"):
            pass
        with progress.phase("cross-validating 300 samples (5 folds)"):
            pass
    text = stream.getvalue()
    assert "classes: loading embeddings" in text
    assert "classes: cross-validating 300 samples (5 folds)" in text
    assert "2/2" in text
    assert re.search(r"classes: done in \d+\.\d s\n$", text)


def test_the_clock_runs_during_one_long_call(monkeypatch):
    monkeypatch.setattr(progress_module, "_REDRAW_SECONDS", 0.02)
    stream = _Terminal()
    with Progress("session apply", stream=stream) as progress:
        with progress.phase("evaluating"):
            before = stream.getvalue().count("\r")
            time.sleep(0.3)  # one opaque library call: no updates from inside
            during = stream.getvalue().count("\r") - before
    assert during >= 3  # redrawn by the background thread while the phase ran


def test_short_steps_leave_no_line_behind():
    stream = _Terminal()
    with Progress("rank", phases=1, stream=stream) as progress:
        with progress.phase("ranking"):
            pass
    assert "done in" not in stream.getvalue()


def test_an_error_leaves_no_done_line(monkeypatch):
    monkeypatch.setattr(progress_module, "QUIET_SECONDS", 0.0)
    stream = _Terminal()
    with pytest.raises(RuntimeError):
        with Progress("rank", phases=1, stream=stream) as progress:
            with progress.phase("ranking"):
                raise RuntimeError("boom")
    assert "done in" not in stream.getvalue()


@pytest.mark.parametrize("command", ["classes", "rank"])
def test_cli_steps_name_their_phases_on_a_terminal_only(tmp_path, capsys, monkeypatch, command):
    cache = make_cache(tmp_path, n_per_class=40)[0]
    argv = [command, "--cache", str(cache)] + (["--out", str(tmp_path / "r.csv")] if command == "rank" else [])
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "loading embeddings" not in captured.err  # stderr is not a terminal here
    monkeypatch.setattr(progress_module, "progress_enabled", lambda stream=None: True)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"{command}: loading embeddings" in captured.err
    assert ("cross-validating 120 samples" if command == "classes" else "ranking 120 samples") in captured.err
    assert "\r" not in captured.out  # the table on stdout is printed after the bar is gone
    assert main(["-q", *argv]) == 0
    assert "loading embeddings" not in capsys.readouterr().err  # -q silences it
