"""Exact resume for every module: the random streams and the train loader's position travel in the checkpoint.

A callback, not a base class, so no module's override can drop it; ``train()`` always adds it.
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from finetune.trainer import compat


class ExactResume(pl.Callback):
    """Saves the global random generators' states in every checkpoint and restores them when fitting resumes;
    hands the train loader its saved position before the first batch; reads metric states a lazy load left."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # configure_optimizers reads trainer.estimated_stepping_batches, which builds the train loader before
        # Lightning restores the loops, so Lightning never hands the loader its saved position; hand it now
        # (before the first batch), or a run resumed mid-epoch would start the epoch's batches over.
        compat.restore_loader_position(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # Dropout draws from the global generators: a run resumed mid-epoch must continue their streams.
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # Called after the weights loaded (Lightning restores the module, then the callbacks).
        if "rng_states" in checkpoint and trainer.state.fn == "fit":
            set_rng_states(checkpoint["rng_states"])
        materialize_metric_states(pl_module)


def rng_states() -> dict[str, Any]:
    """The global generators' states (torch, CUDA, numpy, Python) as tensors and plain values, so that the
    checkpoint still loads with ``torch.load(weights_only=True)`` (numpy arrays would not)."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` saved."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


def materialize_metric_states(module: torch.nn.Module) -> None:
    """Read the metric states a lazy checkpoint load left unread. Lightning's FSDP strategy loads checkpoints
    lazily, and torchmetrics keeps a loaded state as the object it was given: a list state stayed a
    not-yet-loaded placeholder, and the first update after resuming failed."""
    from torchmetrics import Metric

    for metric in module.modules():
        if isinstance(metric, Metric):
            for name in compat.metric_state_names(metric):
                setattr(metric, name, compat.materialize(getattr(metric, name)))
