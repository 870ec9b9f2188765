"""Project callbacks: stopping rules Lightning does not have."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl


class LossThresholdStopping(pl.Callback):
    """Stop once a training batch's loss falls below ``threshold`` (``stop_reason: loss_threshold``).

    Checked after every training batch, so "steps to reach the threshold" is exact. ``threshold: null`` switches
    the rule off, which lets the default callbacks carry it ready to set from the command line.

    Args:
        threshold: stop when the loss is below this value; None never stops.
    """

    def __init__(self, threshold: float | None = None) -> None:
        if threshold is not None and not math.isfinite(threshold):
            raise ValueError(f"callbacks.loss_threshold.threshold must be a finite number, got {threshold}")
        self.threshold = threshold
        self.stopped_at_step: int | None = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if self.threshold is None or loss is None or self.stopped_at_step is not None:
            return
        if float(loss) < self.threshold:
            self.stopped_at_step = trainer.global_step
            trainer.should_stop = True
