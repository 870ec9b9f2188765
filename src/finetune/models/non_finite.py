"""What a NaN or infinite training loss does: stop naming the step and a checkpoint whose weights are all finite,
or skip the batch, and stop anyway when most recent batches were skipped (a diverged run is not ``completed``)."""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any

from finetune.errors import UserError

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite (or too many batches in a row had to be skipped)."""


class NonFiniteGuard:
    """Applies ``model.non_finite_loss`` to each training batch.

    Args:
        policy: ``error`` (stop at the first non-finite loss) or ``skip`` (no optimizer step for that batch).
        window: how many recent batches ``skip`` looks back on.
        max_skipped: the share of the window that may be skipped before the run stops.
    """

    def __init__(self, policy: str = "error", window: int = 20, max_skipped: float = 0.25) -> None:
        if policy not in ("error", "skip"):
            raise UserError(f"model.non_finite_loss must be 'error' or 'skip', got '{policy}'")
        if not (isinstance(window, int) and window >= 1) or not 0 <= max_skipped < 1:
            raise UserError(f"model.non_finite_window must be >= 1 and model.non_finite_max_skipped in [0, 1), got "
                            f"{window!r} and {max_skipped!r}")  # fmt: skip
        self.policy, self.max_skipped = policy, max_skipped
        self.recent: deque[bool] = deque(maxlen=window)

    def finite(self, trainer: Any) -> None:
        """Record a batch whose loss was finite."""
        self.recent.append(False)

    def non_finite(self, loss: float, trainer: Any) -> None:
        """Skip the batch (a warning), or raise ``NonFiniteLossError`` with the step and the last good checkpoint."""
        step = trainer.global_step
        if self.policy == "skip":
            self.recent.append(True)
            log.warning("non-finite loss %s at step %d: batch skipped", loss, step)
            seen = min(self.recent.maxlen or 1, max(int(trainer.num_training_batches or 1), 1))
            share = sum(self.recent) / len(self.recent)
            if len(self.recent) >= seen and share > self.max_skipped:
                raise NonFiniteLossError(
                    f"{sum(self.recent)} of the last {len(self.recent)} batches had a non-finite loss (step {step}): "
                    f"training diverged; last good checkpoint: {last_finite_checkpoint(trainer)} (lower "
                    "optimizer.lr, or raise model.non_finite_max_skipped)"
                )
            return
        raise NonFiniteLossError(
            f"non-finite training loss ({loss}) at step {step}; last good checkpoint: "
            f"{last_finite_checkpoint(trainer)} (lower optimizer.lr, keep gradient clipping on, or set "
            "model.non_finite_loss=skip)"
        )


def last_finite_checkpoint(trainer: Any) -> str:
    """The newest checkpoint of this run whose weights are all finite (a checkpoint saved after the weights
    overflowed is no good), or ``none yet``."""
    folders = {Path(c.dirpath) for c in trainer.checkpoint_callbacks if getattr(c, "dirpath", None)}
    candidates = sorted((p for f in folders for p in f.glob("*.ckpt")), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        if _weights_finite(path):
            return str(path)
    return "none yet"


def _weights_finite(path: Path) -> bool:
    import torch

    from finetune.trainer.checkpoints import read_checkpoint

    try:
        weights = read_checkpoint(path)["state_dict"].values()
    except UserError:
        return False
    return all(bool(torch.isfinite(w).all()) for w in weights if torch.is_tensor(w) and w.is_floating_point())
