"""Reading Lightning checkpoints safely: the recorded SHA-256 checked, ``weights_only`` unpickling, and a clear
error for a broken file. Torch-free until a checkpoint is read."""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

from finetune.atomic import file_digest, folder_bytes
from finetune.errors import UserError

SUFFIX = ".sha256"


def folder_mb(folder: Path) -> float | None:
    """The size of every file under ``folder`` in MB (None when there is no such folder)."""
    return round(folder_bytes(folder) / 2**20, 3) if folder.is_dir() else None


def checksum_path(path: str | Path) -> Path:
    """Where the checksum of the checkpoint at ``path`` is kept."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def verify_checksum(path: str | Path) -> None:
    """Raise ``UserError`` when the checkpoint's bytes differ from its recorded checksum (no record: nothing to
    check, e.g. a checkpoint from another tool)."""
    path = Path(path)
    record = checksum_path(path)
    if not record.is_file():
        return
    expected = (record.read_text().split() or [""])[0]
    if file_digest(path) != expected:
        raise UserError(
            f"checkpoint {path} is corrupt: its SHA-256 differs from {record.name} (the file changed after it "
            "was written: a disk or copy fault); use an earlier checkpoint or delete this one"
        )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded on CPU with ``weights_only=True`` (no code runs while unpickling).

    Raises ``UserError`` naming the file when it is missing, truncated or corrupt.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist (give the path of a .ckpt file)")
    verify_checksum(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"checkpoint {path} is truncated or corrupt ({first_line[:160]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"checkpoint {path} is not a Lightning checkpoint (no state_dict inside)")
    return checkpoint


def check_checkpoint_weights(path: str, net: Any) -> str:
    """Every tensor of ``net`` is in the checkpoint (as ``net.<name>``) with the same shape."""
    checkpoint = read_checkpoint(path)
    state = checkpoint["state_dict"]
    # A Hugging Face classifier's: its signature names its model type (older ones: their hyperparameters).
    saved_type = (checkpoint.get("signature") or checkpoint.get("hyper_parameters") or {}).get("model_type")
    wrong = [k for k, v in net.state_dict().items() if getattr(state.get(f"net.{k}"), "shape", None) != v.shape]
    if saved_type or wrong:
        held = f"a {saved_type} classifier" if saved_type else f"no matching net.{wrong[0]}"
        raise UserError(
            f"checkpoint {path} holds {held}, not this {type(net).__name__}; resume from a checkpoint of this "
            "model, or set ckpt_path=null"
        )
    return f"checkpoint: {path} (epoch {checkpoint.get('epoch')}, step {checkpoint.get('global_step')})"


def newest_good_checkpoint(folder: Path) -> Path | None:
    """The readable checkpoint with the most optimizer steps; broken ones are reported and skipped."""
    newest = newest_readable(folder)
    return newest[0] if newest else None


def newest_readable(folder: Path) -> tuple[Path, int] | None:
    """``newest_good_checkpoint`` and its global step (read once); a checkpoint of weights only (the best
    one) is not one to resume from."""
    readable = []
    for path in folder.glob("*.ckpt"):
        try:
            checkpoint = read_checkpoint(path)
        except UserError as error:
            logging.getLogger(__name__).warning("%s; skipped", error)
            continue
        if "optimizer_states" in checkpoint:
            readable.append((int(checkpoint.get("global_step", -1)), path.stat().st_mtime, path))
    if not readable:
        return None
    step, _, path = max(readable)
    return path, step
