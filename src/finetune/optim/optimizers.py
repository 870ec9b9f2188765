"""Building the optimizer from its config partial (the part of the loop a config cannot wire alone).

Learning-rate schedules live in ``finetune.optim.schedulers``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.optim.param_groups import describe, param_groups
from finetune.trainer.instantiate import plain

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import torch
    from torch.optim import Optimizer


def build_optimizer(
    factory: Callable[..., Optimizer],
    model: torch.nn.Module,
    allow_fused: bool = True,
    matrices: set[str] | None = None,
    layer_decay: float | None = None,
    head_lr: float | None = None,
) -> Optimizer:
    """Complete an optimizer partial with parameter groups; ``fused: null`` becomes fused where torch has it.

    ``layer_decay`` and ``head_lr`` (``param_groups.*`` in the config) shape the groups
    (``finetune.optim.param_groups``). On a small model the optimizer step is a large share of a training step, and the
    fused kernels were 1.45x faster end to end on a 2-core CPU, so ``fused: null`` means "fastest available"
    rather than torch's default. The groups are logged once, when the optimizer is built.

    Args:
        factory: the optimizer partial from the config.
        model: the network whose trainable parameters are optimized.
        allow_fused: False where the loop cannot use a fused optimizer (fp16 loss scaling with clipping).
        matrices: names of the matrices (weight decay), taken before FSDP flattened the parameters.
        layer_decay: each depth below the top gets this factor of the learning rate of the one above.
        head_lr: the task head's own learning rate.
    """
    keywords = dict(factory.keywords) if isinstance(factory, functools.partial) else {}
    # Plain lists (betas), not Hydra's ListConfig: the optimizer state is saved in checkpoints, which must load
    # with torch.load(weights_only=True).
    keywords = {key: plain(value) for key, value in keywords.items()}
    target = factory.func if isinstance(factory, functools.partial) else factory
    lr = keywords.get("lr", inspect.signature(target).parameters["lr"].default)
    if not lr or lr <= 0:
        raise UserError(f"optimizer.lr must be a positive number (e.g. optimizer.lr=5e-5), got {lr}")
    if "fused" in keywords and keywords["fused"] is None:
        keywords["fused"] = allow_fused and _fused_supported(target, model)
    groups = param_groups(model, float(lr), layer_decay, head_lr, matrices=matrices)
    optimizer = target(groups, *getattr(factory, "args", ()), **keywords)
    log.info("optimizer %s, parameter groups:\n%s", target.__name__, describe(groups, keywords.get("weight_decay", 0)))
    return optimizer


def _fused_supported(optimizer_class: Any, model: torch.nn.Module) -> bool:
    if "fused" not in inspect.signature(optimizer_class).parameters:
        return False
    device = next(model.parameters()).device.type
    return device in ("cpu", "cuda", "mps")
