"""Files written whole or not at all, on a real full disk where one can be mounted, else on a simulated one."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from finetune import atomic


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs when this machine lets us mount one (root in CI), else None."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_disk_once(monkeypatch) -> None:
    """Make the next write fail as a full disk does (where no small disk can be mounted)."""
    real = os.fsync

    def full(fd: int) -> None:
        monkeypatch.setattr(os, "fsync", real)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)


def test_write_replaces_the_whole_file_and_leaves_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic.write_json(target, {"status": "completed"})
    atomic.write_json(target, {"status": "failed"})
    assert json.loads(target.read_text()) == {"status": "failed"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_full_disk_keeps_the_earlier_file_and_names_folder_and_size(small_disk, tmp_path, monkeypatch) -> None:
    folder = small_disk or tmp_path
    target = folder / "epoch_000.ckpt"
    atomic.write_bytes(target, b"earlier checkpoint")
    big = b"x" * (2 << 20)  # 2 MiB: more than the 1 MiB disk holds
    if small_disk is None:
        fill_disk_once(monkeypatch)
    with pytest.raises(atomic.DiskFull) as error:
        atomic.write_bytes(target, big)
    message = str(error.value)
    assert message.startswith(f"disk full: could not write epoch_000.ckpt in {folder} (2.0 MiB needed")
    assert "\n" not in message
    assert target.read_bytes() == b"earlier checkpoint"  # intact, and no half file beside it
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_000.ckpt"]


def test_errors_other_than_a_full_disk_pass_through(tmp_path: Path, monkeypatch) -> None:
    def denied(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", denied)
    with pytest.raises(OSError, match="Input/output error"):
        atomic.write_text(tmp_path / "a.txt", "text")
    assert list(tmp_path.iterdir()) == []


def test_replace_folder_replaces_rather_than_merges(tmp_path: Path) -> None:
    final, partial = tmp_path / "key", tmp_path / ".key.tmp"
    final.mkdir()
    (final / "stale.arrow").write_text("damaged")
    partial.mkdir()
    (partial / "data.arrow").write_text("fresh")
    atomic.replace_folder(partial, final)
    assert sorted(p.name for p in final.iterdir()) == ["data.arrow"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]


def test_disk_full_is_seen_through_wrapping_errors() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("writing failed") from inner
    except RuntimeError as outer:
        assert atomic.is_disk_full(outer)
    assert not atomic.is_disk_full(RuntimeError("other"))


def test_a_full_disk_reported_in_words_is_seen() -> None:
    safetensors_like = Exception('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No sp')
    assert atomic.is_disk_full(safetensors_like)
    assert not atomic.is_disk_full(Exception("Error while serializing: shape mismatch"))
