"""What a run costs, for ``metrics.json`` and the sweep report: trainable and total parameters, the median wall
time of an optimizer step, the peak memory while fitting, and the size of the checkpoint it keeps.

Peak memory is the accelerator's peak allocation on a GPU, and on a CPU the process's peak resident set since
fitting began (Linux resets it through ``/proc/self/clear_refs``; elsewhere the peak since the process started).
"""

from __future__ import annotations

import contextlib
import logging
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from finetune.adapters.attach import parameter_counts

log = logging.getLogger(__name__)
MB = 1024 * 1024


class RunCosts(pl.Callback):
    """Counts the parameters at the start of fitting and times the optimizer steps (the median: a step that
    includes a validation or a checkpoint does not move it)."""

    def __init__(self) -> None:
        self.counts: dict[str, Any] = {}
        self.step_times: list[float] = []
        self.peak_bytes: int | None = None
        self._last: tuple[int, float] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Now, not when the run starts: the network is built in configure_model.
        self.counts = parameter_counts(pl_module.net)
        log.info("parameters: %(trainable)s trainable of %(total)s (%(trainable_share).2f%%)",
                 {**self.counts, "trainable_share": 100 * self.counts["trainable_share"]})  # fmt: skip
        for logger in trainer.loggers:
            logger.log_hyperparams({"model/params/total": self.counts["total"],
                                    "model/params/trainable": self.counts["trainable"]})  # fmt: skip
        _reset_peak(pl_module.device)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        # The time between the ends of consecutive optimizer steps; the first step (no start mark) is left out.
        if self._last is not None and trainer.global_step == self._last[0]:
            return  # an accumulating batch: the step is not over
        now = time.perf_counter()
        if self._last is not None:
            self.step_times.append((now - self._last[1]) / (trainer.global_step - self._last[0]))
        self._last = (trainer.global_step, now)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.peak_bytes = _peak(pl_module.device)

    def facts(self, checkpoint: str | None) -> dict[str, Any]:
        """The costs as ``metrics.json`` records them (``costs``); None where not measured."""
        size = Path(checkpoint).stat().st_size if checkpoint and Path(checkpoint).is_file() else None
        return {
            "trainable_params": self.counts.get("trainable"),
            "total_params": self.counts.get("total"),
            "trainable_share": self.counts.get("trainable_share"),
            "step_time_s": statistics.median(self.step_times) if self.step_times else None,
            "peak_memory_mb": round(self.peak_bytes / MB, 1) if self.peak_bytes else None,
            "checkpoint_mb": round(size / MB, 3) if size is not None else None,
        }


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # 5: reset the peak resident set size (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")


def _peak(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak if sys.platform == "darwin" else peak * 1024
