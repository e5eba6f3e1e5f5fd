"""Crash-safe writes (coreclean._internal.atomic): readers see the old file or the new one, never a mix."""

import pytest

from coreclean._internal.atomic import atomic_open, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "labels.csv"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]


def test_a_finished_write_replaces_the_file(tmp_path):
    target = tmp_path / "labels.csv"
    atomic_write_text(target, "old\n")
    atomic_write_text(target, "new ünï\n")
    assert target.read_text(encoding="utf-8") == "new ünï\n"


def test_writes_without_fsync_are_still_atomic_and_flushed_together(tmp_path, monkeypatch):
    import os

    from coreclean._internal import atomic

    flushed = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: flushed.append(fd) or real_fsync(fd))
    target = tmp_path / "ab" / "image.png"
    target.parent.mkdir()
    with pytest.raises(RuntimeError), atomic_open(target, durable=False) as handle:
        handle.write(b"half")
        raise RuntimeError("killed mid-write")
    assert not target.parent.joinpath("image.png").exists() and not list(target.parent.iterdir())
    with atomic_open(target, durable=False) as handle:
        handle.write(b"whole")
    assert target.read_bytes() == b"whole" and flushed == []  # nothing flushed one by one
    atomic.fsync_paths([target])
    assert len(flushed) == 3  # the file, its folder and the folder holding that
    with pytest.raises(FileNotFoundError):
        atomic.fsync_paths([tmp_path / "missing.png"])
