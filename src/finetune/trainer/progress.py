"""What a run prints while it trains: tqdm's live bar on a terminal, plain lines when the output goes to a file or
a pipe (a redrawn bar there is one line per step), and one line per validation in the console and in the run's
``<task_name>.log`` whichever it is."""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar
from lightning.pytorch.utilities.data import extract_batch_size

log = logging.getLogger("finetune.train")  # the run's own lines, beside train()'s


def progress_bar(refresh_rate: int = 1, every_n_steps: int = 50) -> ProgressBar:
    """``conf/callbacks/progress_bar.yaml``: tqdm's bar (redrawn every ``refresh_rate`` batches) when stderr is a
    terminal, else ``LineProgress`` (a line every ``every_n_steps`` optimizer steps)."""
    if sys.stderr.isatty():
        return TQDMProgressBar(refresh_rate=refresh_rate)
    return LineProgress(every_n_steps)


class Throughput:
    """Training samples per second since the last ``rate()``."""

    def __init__(self) -> None:
        self.samples: int | None = 0  # None: a batch since the last rate could not be sized
        self.since = time.perf_counter()

    def add(self, batch: Any) -> None:
        try:
            self.samples = None if self.samples is None else self.samples + extract_batch_size(batch)
        except Exception:  # a batch Lightning cannot size: no rate, not a failed run
            self.samples = None

    def rate(self) -> float | None:
        now = time.perf_counter()
        rate = self.samples / (now - self.since) if self.samples and now > self.since else None
        self.samples, self.since = 0, now
        return rate


class LineProgress(ProgressBar):
    """A line every ``every_n_steps`` optimizer steps (0: none) with the step, the loss, the learning rate and
    the throughput, except at an epoch's last batch; nothing for evaluation, which ``ValidationLog`` reports."""

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        self.every_n_steps = int(every_n_steps)
        self._enabled, self._last_step = True, -1
        self._throughput = Throughput()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int) -> None:
        self._throughput.add(batch)
        step = trainer.global_step
        if not self._enabled or self.every_n_steps <= 0 or step % self.every_n_steps or step == self._last_step:
            return
        if idx + 1 >= trainer.num_training_batches:  # the epoch's end: the validation's line follows
            return
        self._last_step = step
        if trainer.is_global_zero:
            log.info("%s | %s", position(trainer), training_part(trainer, self._throughput.rate()))


class ValidationLog(Callback):
    """One line per validation (the position, the training loss, lr and throughput since the last line, every
    validation metric) and nothing during the sanity check; always on, so the run's log file holds them."""

    def __init__(self) -> None:
        self._throughput = Throughput()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int) -> None:
        self._throughput.add(batch)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        shown = " ".join(f"{name} {number(value)}" for name, value in sorted(metrics.items()))
        log.info("%s | %s | %s", position(trainer), training_part(trainer, self._throughput.rate()), shown)


def position(trainer: pl.Trainer) -> str:
    """``epoch 2/3 step 40/48``: where the fit is (totals left out when unknown)."""
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
    try:
        steps = trainer.estimated_stepping_batches
    except Exception:  # no train dataloader yet
        steps = math.inf
    epoch = f"epoch {trainer.current_epoch + 1}" + (f"/{epochs}" if epochs else "")
    return f"{epoch} step {trainer.global_step}" + (f"/{int(steps)}" if math.isfinite(steps) else "")


def training_part(trainer: pl.Trainer, samples_per_s: float | None) -> str:
    """``train/loss 0.4321 lr 2.5e-05 123.4 samples/s`` from the latest logged values."""
    parts = []
    loss = trainer.callback_metrics.get("train/loss_step", trainer.callback_metrics.get("train/loss"))
    if loss is not None:
        parts.append(f"train/loss {number(loss)}")
    if trainer.optimizers:
        parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.3g}")
    if samples_per_s is not None:
        parts.append(f"{samples_per_s:.1f} samples/s")
    return " ".join(parts) or "no training values yet"


def number(value: Any) -> str:
    """A metric as 4 significant digits."""
    return f"{float(value):.4g}"
