"""The optimizer side shared by every LightningModule here: parameter groups, schedules and clipping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch

from finetune.optim import build_optimizer

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

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        # Lightning calls this after backward (and after unscaling under 16-mixed) but before clipping,
        # so train/grad_norm is the norm the clipping sees.
        if self.trainer.global_step % self.trainer.log_every_n_steps == 0:
            grads = [p.grad for p in self.net.parameters() if p.grad is not None]
            self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads), on_step=True, on_epoch=False)

    def _loss_scaler(self) -> Any:
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def configure_optimizers(self) -> Any:
        """Complete the optimizer and scheduler partials."""
        # Under 16-mixed Lightning cannot clip the gradients of a fused optimizer (it unscales internally).
        optimizer = build_optimizer(self.optimizer_factory, self.net, allow_fused=self._loss_scaler() is None)
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
