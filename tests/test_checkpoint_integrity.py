"""Checkpoints carry a SHA-256: a flipped byte is refused on load and skipped at resume; a full disk leaves the
earlier checkpoint whole."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetune import atomic
from finetune.errors import UserError
from finetune.trainer.checkpoint_io import VerifiedCheckpointIO
from finetune.trainer.checkpoints import checksum_path, newest_good_checkpoint, read_checkpoint
from tests.test_atomic import small_disk  # noqa: F401  (fixture)


def checkpoint(step: int, size: int = 16) -> dict:
    """A full-state checkpoint (with the optimizer's state, as ``last.ckpt`` is) at ``step``."""
    return {
        "state_dict": {"net.w": torch.full((size,), float(step))},
        "global_step": step,
        "epoch": 0,
        "optimizer_states": [],
    }


def flip_byte(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_saved_checkpoints_verify_and_a_flipped_byte_is_refused(tmp_path: Path) -> None:
    io = VerifiedCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint(checkpoint(3), path)
    assert checksum_path(path).is_file()
    assert io.load_checkpoint(path, weights_only=True)["global_step"] == 3
    assert read_checkpoint(path)["global_step"] == 3
    flip_byte(path)
    with pytest.raises(UserError, match=r"checkpoint .*last.ckpt is corrupt: its SHA-256 differs"):
        io.load_checkpoint(path, weights_only=True)
    with pytest.raises(UserError, match="is corrupt"):
        read_checkpoint(path)


def test_resume_skips_a_flipped_checkpoint_for_the_next_newest(tmp_path: Path, caplog) -> None:
    io = VerifiedCheckpointIO()
    older, newer = tmp_path / "epoch_000.ckpt", tmp_path / "last.ckpt"
    io.save_checkpoint(checkpoint(2), older)
    io.save_checkpoint(checkpoint(5), newer)
    assert newest_good_checkpoint(tmp_path) == newer
    flip_byte(newer)
    assert newest_good_checkpoint(tmp_path) == older
    assert "last.ckpt is corrupt" in caplog.text


def test_removing_a_checkpoint_removes_its_checksum(tmp_path: Path) -> None:
    io = VerifiedCheckpointIO()
    path = tmp_path / "epoch_001.ckpt"
    io.save_checkpoint(checkpoint(1), path)
    io.remove_checkpoint(path)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_keeps_the_earlier_checkpoint(small_disk, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    from tests.test_atomic import fill_disk_once

    folder = small_disk or tmp_path
    io = VerifiedCheckpointIO()
    path = folder / "last.ckpt"
    io.save_checkpoint(checkpoint(1), path)
    if small_disk is None:
        fill_disk_once(monkeypatch)
    with pytest.raises(atomic.DiskFull, match=rf"disk full: could not write last.ckpt\S* in {folder} \("):
        io.save_checkpoint(checkpoint(2, size=1 << 19), path)  # 2 MiB of weights on a 1 MiB disk
    assert read_checkpoint(path)["global_step"] == 1  # still whole, and its checksum still matches
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
