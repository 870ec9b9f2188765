"""Preemption: a cluster's SIGTERM or SIGUSR1 ends a run with a checkpoint, not with lost work.

The callback finishes the current batch, saves ``checkpoints/interrupted.ckpt`` and raises ``RunPreempted``
(no validation, no test: the grace period before the node goes is short); ``train()`` records the run as
``interrupted`` and raises it again; the CLI requeues a SLURM job and exits with 128 + the signal's number.
Rerunning the same command (or the requeued job) resumes from the checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "interrupted.ckpt"


class RunPreempted(Exception):
    """Training stopped on a signal after saving a checkpoint (``checkpoint`` None: testing stopped, nothing to
    save)."""

    def __init__(self, signum: int, checkpoint: str | None) -> None:
        saved = f"checkpoint {checkpoint}" if checkpoint else "stopped while testing, no result written"
        super().__init__(f"stopped by {signal.Signals(signum).name}; {saved}")
        self.signum = signum
        self.checkpoint = checkpoint

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, the shell's convention for "ended by this signal"."""
        return 128 + self.signum


class PreemptionCheckpoint(Callback):
    """Saves a checkpoint and raises ``RunPreempted`` at the end of the batch during which one of ``signals``
    arrived.

    Args:
        signals: signal names to handle (SIGTERM: most schedulers' notice; SIGUSR1: SLURM's ``--signal``).
    """

    def __init__(self, signals: tuple[str, ...] | list[str] = ("SIGTERM", "SIGUSR1")) -> None:
        unknown = [name for name in signals if not hasattr(signal, name)]
        if unknown:
            from finetune.errors import UserError

            raise UserError(f"callbacks.preemption.signals: unknown signal(s) {unknown}; use e.g. SIGTERM, SIGUSR1")
        self.signals = [getattr(signal, name) for name in signals]
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _notice(self, signum: int, _frame: Any) -> None:
        # A handler only records: saving in the middle of a batch (or of an optimizer step) would be unsafe.
        if self.received is None:
            log.warning("received %s: saving a checkpoint after this batch", signal.Signals(signum).name)
            self.received = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Installed now, after Lightning's own handlers, which would wait for the end of the epoch.
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._notice)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        # Under DDP every rank must stop at the same step: saving a checkpoint is collective.
        noticed = self.received is not None
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(noticed, all=False):
            self.received = self.received or signal.SIGTERM
        if self.received is None:
            return
        path = Path(trainer.default_root_dir) / "checkpoints" / CHECKPOINT_NAME
        trainer.save_checkpoint(path, weights_only=False)  # full state to resume; written to a temp name, renamed
        log.warning("checkpoint saved at step %d: %s", trainer.global_step, path)
        # An exception, not trainer.should_stop: stopping that way would run a validation first.
        raise RunPreempted(self.received, str(path))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


@contextmanager
def signals_stop_testing(names: tuple[str, ...] = ("SIGTERM", "SIGUSR1")) -> Iterator[None]:
    """While testing (``eval.py``, the test after fitting): a cluster's signal stops the command at once as
    ``RunPreempted``, so it exits with 128 + the signal's number and is recorded interrupted. Lightning itself only
    notes a SIGTERM outside fitting, and the command would end as if it had succeeded. Lightning's own handlers,
    installed inside ``trainer.test``, call this one too."""

    def stop(signum: int, _frame: Any) -> None:
        raise RunPreempted(signum, None)

    previous = {getattr(signal, name): signal.signal(getattr(signal, name), stop) for name in names}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def requeue_slurm_job() -> bool:
    """``scontrol requeue`` this SLURM job (or array task); False outside SLURM or when it fails."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        job_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if not job_id:
        return False
    try:
        result = subprocess.run(["scontrol", "requeue", job_id], check=False, capture_output=True, text=True)
    except FileNotFoundError:
        log.warning("SLURM job %s not requeued: no scontrol on PATH", job_id)
        return False
    if result.returncode != 0:
        log.warning("scontrol requeue %s failed: %s", job_id, result.stderr.strip())
        return False
    log.warning("requeued SLURM job %s; it resumes from the checkpoint", job_id)
    return True
