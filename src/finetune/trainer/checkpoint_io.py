"""Checkpoints written in their own folder (temporary name, fsync, rename) with a SHA-256 beside each.

Lightning's ``TorchCheckpointIO`` stages a checkpoint in the system temp folder and moves it, which is a copy
when the run dir is on another filesystem: a full disk there left half a checkpoint under its final name.
``VerifiedCheckpointIO`` writes where the checkpoint goes, and ``<name>.ckpt.sha256`` lets every reader
(Lightning's own restore and ``finetune.trainer.checkpoints.read_checkpoint``) refuse a file whose bytes changed.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from finetune import atomic
from finetune.trainer.checkpoints import checksum_path, verify_checksum


class VerifiedCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes atomically in the checkpoint's own folder and verifies on load."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if _is_remote(path):  # object stores: Lightning's own upload
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        import torch

        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getbuffer()
        # The checkpoint first: a full disk then leaves the earlier checkpoint and its checksum as they were.
        atomic.write_bytes(path, data)
        try:
            atomic.write_text(checksum_path(path), f"{hashlib.sha256(data).hexdigest()}  {Path(path).name}\n")
        except BaseException:
            checksum_path(path).unlink(missing_ok=True)  # a stale checksum would condemn the new checkpoint
            raise

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        if not _is_remote(path):
            verify_checksum(path)
        if map_location is None:
            return super().load_checkpoint(path, weights_only=weights_only)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path: Any) -> None:
        super().remove_checkpoint(path)
        if not _is_remote(path):
            checksum_path(path).unlink(missing_ok=True)


def _is_remote(path: Any) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")
