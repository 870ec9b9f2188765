"""Reading Lightning checkpoints safely: ``weights_only`` unpickling, and a clear error for a broken file."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from finetune.errors import UserError


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded on CPU with ``weights_only=True`` (no code runs while unpickling).

    Raises ``UserError`` naming the file when it is missing, truncated or corrupt.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist (give the path of a .ckpt file)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"checkpoint {path} is truncated or corrupt ({first_line[:160]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"checkpoint {path} is not a Lightning checkpoint (no state_dict inside)")
    return checkpoint
