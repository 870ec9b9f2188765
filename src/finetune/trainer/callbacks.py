"""Project callbacks: a stopping rule and a resumable last checkpoint, which Lightning does not have."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Checkpoint

from finetune.trainer.checkpoints import checksum_path


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


class LastCheckpoint(Checkpoint):
    """``checkpoints/last.ckpt``, the state to resume from: every ``every_n_train_steps`` optimizer steps, after
    every validation and when fitting ends. The one before is kept as ``last-previous.ckpt``, so that a resume
    falls back to it if the newest file is damaged.

    Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only when it also saves a top-k
    checkpoint, so the newest state would be lost whenever the monitored metric did not improve. Being a
    ``Checkpoint``, this callback runs after the others (early stopping's state is saved up to date).

    Once the run completed, ``when_done`` removes ``last-previous.ckpt`` and, unless kept, ``last.ckpt``.

    Args:
        dirpath: the checkpoints folder.
        every_n_train_steps: also save every N optimizer steps (mid-epoch); 0 or None: only at validation.
        keep_when_done: keep ``last.ckpt`` (weights and optimizer state) after the run completed, so that
            ``resume=<run dir>`` can train it further: true, false, or "auto" (kept by a single run, removed by a
            sweep's jobs, whose best weights are what a sweep uses).
    """

    def __init__(
        self, dirpath: str, every_n_train_steps: int | None = 500, keep_when_done: bool | str = "auto"
    ) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0 or null, got {every_n_train_steps}")
        if keep_when_done not in (True, False, "auto"):
            raise ValueError(f"keep_when_done must be true, false or auto, got {keep_when_done!r}")
        self.keep_when_done = keep_when_done
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = every_n_train_steps or 0
        self.last_model_path = ""
        self._saved_step = -1

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            self._save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)

    def _save(self, trainer: pl.Trainer) -> None:
        if trainer.global_step == self._saved_step or trainer.fast_dev_run:
            return
        last = self.dirpath / "last.ckpt"
        if trainer.is_global_zero and last.is_file():
            previous = self.dirpath / "last-previous.ckpt"
            os.replace(last, previous)
            if checksum_path(last).is_file():  # the checksum goes with its file
                os.replace(checksum_path(last), checksum_path(previous))
        trainer.save_checkpoint(last, weights_only=False)  # full state to resume (VerifiedCheckpointIO)
        self.last_model_path = str(last)
        self._saved_step = trainer.global_step

    def when_done(self, in_sweep: bool) -> list[Path]:
        """The run completed: remove the fallback ``last-previous.ckpt`` and, unless ``keep_when_done`` (or
        "auto" outside a sweep), ``last.ckpt``, with their checksums. Returns the files removed."""
        names = ["last-previous.ckpt"]
        if self.keep_when_done is False or (self.keep_when_done == "auto" and in_sweep):
            names.append("last.ckpt")
        removed = []
        for path in [self.dirpath / name for name in names]:
            for file in (path, checksum_path(path)):
                if file.is_file():
                    file.unlink()
                    removed.append(file)
        return removed
