"""The optimizer side shared by every LightningModule here: parameter groups, schedules and clipping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch

from finetune.optim import build_optimizer
from finetune.param_groups import matrix_names

if TYPE_CHECKING:
    from torch.optim import Optimizer


class OptimizedModule(pl.LightningModule):
    """Completes ``self.optimizer_factory`` and ``self.scheduler_factory`` (config partials) for ``self.net``.

    The scheduler steps after every optimizer step, sized by ``trainer.estimated_stepping_batches``, unless its
    factory returns a full Lightning scheduler config (plateau: after validation, on a metric). Logs
    ``train/grad_norm`` (before clipping) every logging step.
    """

    net: torch.nn.Module
    optimizer_factory: Any
    scheduler_factory: Any

    def setup(self, stage: str) -> None:
        # Before the strategy wraps the network: under FSDP its parameters then look flat (1-D).
        if not hasattr(self, "matrices"):
            self.matrices = matrix_names(self.net)

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        # Lightning calls this after backward (and after unscaling under 16-mixed) but before clipping,
        # so train/grad_norm is the norm the clipping sees.
        if self.trainer.global_step % self.trainer.log_every_n_steps == 0:
            grads = [p.grad for p in self.net.parameters() if p.grad is not None]
            self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads), on_step=True, on_epoch=False)

    def on_train_start(self) -> None:
        # configure_optimizers reads trainer.estimated_stepping_batches, which builds the train loader before
        # Lightning restores the loops, so Lightning never hands the loader its saved position; hand it now
        # (before the first batch), or a run resumed mid-epoch would start the epoch's batches over.
        self.trainer.fit_loop._load_combined_loader_states()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Dropout draws from the global generators: a run resumed mid-epoch must continue their streams.
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint and self._trainer is not None and self.trainer.state.fn == "fit":
            set_rng_states(checkpoint["rng_states"])
        materialize_metric_states(self)

    def _loss_scaler(self) -> Any:
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def configure_optimizers(self) -> Any:
        """Complete the optimizer and scheduler partials."""
        # Under 16-mixed Lightning cannot clip the gradients of a fused optimizer (it unscales internally).
        optimizer = build_optimizer(
            self.optimizer_factory,
            self.net,
            allow_fused=self._loss_scaler() is None,
            matrices=getattr(self, "matrices", None),
        )
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, num_training_steps=total_steps)
        config = scheduler if isinstance(scheduler, dict) else {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": config}

    def configure_gradient_clipping(
        self,
        optimizer: Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip as configured. Without a loss scaler (32 or bf16) clip directly, because Lightning refuses
        any mixed precision with a fused optimizer although only fp16's loss scaling needs the refusal."""
        if self._loss_scaler() is not None or not gradient_clip_val:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        elif gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(self.net.parameters(), gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), gradient_clip_val)


def rng_states() -> dict[str, Any]:
    """The global generators' states (torch, CUDA, numpy, Python) as tensors and plain values, so that the
    checkpoint still loads with ``torch.load(weights_only=True)`` (numpy arrays would not)."""
    import random

    import numpy as np

    name, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` saved."""
    import random

    import numpy as np

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
    from lightning.fabric.utilities.load import _materialize_tensors
    from torchmetrics import Metric

    for metric in module.modules():
        if isinstance(metric, Metric):
            for name in metric._defaults:
                setattr(metric, name, _materialize_tensors(getattr(metric, name)))
