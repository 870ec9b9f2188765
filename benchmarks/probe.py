"""``BenchProbe``: the Lightning callback that measures a project run for the benchmark.

    python train.py ... trainer.val_check_interval=0.25 +callbacks.bench_probe._target_=benchmarks.probe.BenchProbe

(with the repository root on ``PYTHONPATH``). It writes the result JSON of ``benchmarks.common`` to the file named
by ``$BENCH_PROBE_OUT`` when training ends. The training clock starts with the epoch, pauses when validation
starts and resumes at the next training batch, so validation and the checkpoints saved after it are excluded
(``eval_s`` and ``after_eval_s`` record them apart).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from benchmarks.common import TokenCounter, TrainClock, eval_record, peak_rss_mb

OUT_ENV = "BENCH_PROBE_OUT"


class BenchProbe(pl.Callback):
    """Training time without validation, tokens and padding fed, dev accuracy at each validation, peak RSS.

    Args:
        out: where to write the JSON; default ``$BENCH_PROBE_OUT`` (nothing is written without either).
        metric: the logged validation metric to record.
    """

    def __init__(self, out: str | None = None, metric: str = "val/acc") -> None:
        self.out = out or os.environ.get(OUT_ENV)
        self.metric = metric
        self.clock = TrainClock()
        self.counter = TokenCounter()
        self.evals: list[dict[str, float]] = []
        self.first_step: float | None = None
        self.eval_s = self.after_eval_s = 0.0
        self._mark: float | None = None  # when the current validation started, or when it ended

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.start()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, *_: Any) -> None:
        if not self.clock.running:
            if self._mark is not None:  # checkpoints and early stopping ran after validation's end
                self.after_eval_s += time.perf_counter() - self._mark
                self._mark = None
            self.clock.start()
        self.counter.add(batch["attention_mask"])

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        self.first_step = self.first_step or time.time()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        _synchronize(pl_module)
        self.clock.pause()
        self._mark = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning runs the checkpoint callbacks after this hook, so their saving lands in after_eval_s.
        if trainer.sanity_checking or self._mark is None:
            return
        now = time.perf_counter()
        self.eval_s += now - self._mark
        self._mark = now
        acc = trainer.callback_metrics.get(self.metric)
        batches = int(trainer.num_training_batches)  # the benchmark keeps accumulate_grad_batches at 1
        value = float(acc) if acc is not None else -1.0
        self.evals.append(eval_record(int(trainer.global_step), batches, self.clock.elapsed(), value))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _synchronize(pl_module)
        self.clock.pause()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.pause()
        if self._mark is not None:
            self.after_eval_s += time.perf_counter() - self._mark
            self._mark = None
        if self.out:
            Path(self.out).parent.mkdir(parents=True, exist_ok=True)
            Path(self.out).write_text(json.dumps(self.result(trainer)))

    def result(self, trainer: pl.Trainer) -> dict[str, Any]:
        """The result dict of ``benchmarks.common``, with the run's resolved settings."""
        datamodule = trainer.datamodule
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        settings = {
            "precision": str(trainer.precision),
            "group_by_length": bool(getattr(getattr(datamodule, "hparams", {}), "group_by_length", False)),
            "optimizer": type(optimizer).__name__ if optimizer else None,
            "fused": optimizer.defaults.get("fused") if optimizer else None,
            "padding": "dynamic",
            "device": str(trainer.strategy.root_device.type),
            "steps": int(trainer.global_step),
        }
        return {
            "train_time_s": self.clock.total,
            **self.counter.as_dict(),
            "evals": self.evals,
            "first_step_unix": self.first_step,
            "peak_rss_mb": peak_rss_mb(),
            "eval_s": self.eval_s,
            "after_eval_s": self.after_eval_s,
            "settings": settings,
        }


def _synchronize(pl_module: pl.LightningModule) -> None:
    """Wait for queued GPU work, so the clock stops when the work is done, not when it was queued."""
    if pl_module.device.type == "cuda":
        import torch

        torch.cuda.synchronize()
