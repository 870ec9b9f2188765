"""Optimizer parameter groups and learning-rate schedules (the parts of the loop a config cannot wire alone)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler


def param_groups(model: torch.nn.Module) -> list[dict[str, Any]]:
    """Two groups: weight decay for matrices, none for biases and norm weights.

    The 2-D rule (nanoGPT) catches every bias and LayerNorm weight of any architecture, unlike a list of names.
    Frozen parameters are left out.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(factory: Callable[..., Optimizer], model: torch.nn.Module, allow_fused: bool = True) -> Optimizer:
    """Complete an optimizer partial with parameter groups; ``fused: null`` becomes fused where torch has it.

    On a small model the optimizer step is a large share of a training step, and the fused kernels were
    1.45x faster end to end on a 2-core CPU, so "null" means "fastest available" rather than torch's default.

    Args:
        factory: the optimizer partial from the config.
        model: the network whose trainable parameters are optimized.
        allow_fused: False where the loop cannot use a fused optimizer (fp16 loss scaling with clipping).
    """
    keywords = dict(getattr(factory, "keywords", {}) or {})
    if "fused" in keywords and keywords["fused"] is None:
        fused = allow_fused and _fused_supported(getattr(factory, "func", factory), model)
        return factory(param_groups(model), fused=fused)
    return factory(param_groups(model))


def _fused_supported(optimizer_class: Any, model: torch.nn.Module) -> bool:
    if "fused" not in inspect.signature(optimizer_class).parameters:
        return False
    device = next(model.parameters()).device.type
    return device in ("cpu", "cuda", "mps")


def warmup_schedule(
    optimizer: Optimizer, num_training_steps: int, name: str = "linear", warmup_ratio: float = 0.0
) -> LRScheduler:
    """A ``transformers.get_scheduler`` schedule whose warmup is a fraction of all optimizer steps.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        num_training_steps: optimizer steps in the whole run (``trainer.estimated_stepping_batches``).
        name: any ``transformers.SchedulerType`` value: linear, cosine, constant, ...
        warmup_ratio: share of the steps spent warming up linearly from 0.
    """
    from transformers import get_scheduler

    if not 0.0 <= warmup_ratio < 1.0:
        from finetune.errors import UserError

        raise UserError(f"scheduler.warmup_ratio must be in [0, 1), got {warmup_ratio}")
    warmup = round(warmup_ratio * num_training_steps)
    if name == "constant" and warmup:
        name = "constant_with_warmup"
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=num_training_steps)
