"""Adapters on a Hugging Face network with ``peft``: the config group's peft config completed with the task's
type and its head, which is trained fully and saved with the adapter (``modules_to_save``), so a reload never
loses it."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def head_modules(net: torch.nn.Module) -> list[str]:
    """The task head: the network's top-level modules with weights outside its pretrained base (``classifier``;
    DistilBERT's ``pre_classifier`` as well). None for a network without a ``base_model_prefix``."""
    prefix = getattr(net, "base_model_prefix", "")
    if not prefix or not hasattr(net, prefix):
        return []
    children = net.named_children()
    return [name for name, child in children if name != prefix and next(child.parameters(), None) is not None]


def task_head(net: torch.nn.Module, head: str | list[str]) -> list[str]:
    """The modules trained in full beside an adapter: ``head`` as the task's config gives it, ``auto`` for
    ``head_modules``."""
    return head_modules(net) if head == "auto" else list(head)


def attach_adapter(
    net: torch.nn.Module, factory: Callable[..., Any], task_type: str | None = None, head: str | list[str] = "auto"
) -> torch.nn.Module:
    """``net`` wrapped by ``peft.get_peft_model``: only the adapter and the task head train.

    ``factory``: a peft config class with its options (``conf/adapter/<option>.yaml``); ``task_type``: the task's
    ``peft.TaskType`` name (``SEQ_CLS`` ...), None for a task peft has no type for; ``head``: the modules trained
    in full and saved with the adapter, ``auto`` for ``head_modules``. Both come from ``conf/task/<task>.yaml``.

    Raises:
        UserError: the target modules name nothing in this network, or the adapter does not fit it.
    """
    from peft import prepare_model_for_kbit_training

    head = task_head(net, head)
    config = factory(task_type=task_type)
    config.modules_to_save = sorted({*head, *(config.modules_to_save or [])})
    if head and hasattr(config, "exclude_modules"):  # no adapter inside a module that is trained fully anyway
        config.exclude_modules = rf"({'|'.join(map(re.escape, head))})(\..+)?"
    if getattr(net, "is_quantized", False):  # adapter=qlora: norms and head in float32, inputs need no grad
        net = prepare_model_for_kbit_training(net, use_gradient_checkpointing=False)
    try:
        return _peft_model(net, config)
    except (ValueError, TypeError, KeyError) as error:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise UserError(
            f"peft ({type(config).__name__}) does not fit {type(net).__name__}: {first}; set adapter.target_modules to "
            "names of its linear layers (e.g. [query,value]) or all-linear"
        ) from None


def _peft_model(net: torch.nn.Module, config: Any) -> torch.nn.Module:
    """``get_peft_model``; with ``target_modules: null`` (peft's own choice) on an architecture peft has no
    choice for (IA3 on a ViT), every linear layer instead of an error."""
    from peft import get_peft_model

    try:
        return get_peft_model(net, config)
    except ValueError as error:
        if getattr(config, "target_modules", "") is not None or "target_modules" not in str(error):
            raise
    log.info("adapter: peft has no default layers for %s; adapting all its linear layers", type(net).__name__)
    config.target_modules = "all-linear"
    if getattr(config, "feedforward_modules", []) is None:  # IA3: scale each layer's output, no input scaling
        config.feedforward_modules = []
    return get_peft_model(net, config)


def parameter_counts(net: torch.nn.Module) -> dict[str, Any]:
    """Trainable and total parameters and the trainable share (4-bit weights counted unpacked, as peft does)."""
    counter = getattr(net, "get_nb_trainable_parameters", None)
    if counter is not None:
        trainable, total = counter()
    else:
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        total = sum(p.numel() for p in net.parameters())
    return {"trainable": int(trainable), "total": int(total), "trainable_share": trainable / total if total else 0.0}


def is_adapted(net: Any) -> bool:
    """Whether ``net`` carries peft adapters."""
    return hasattr(net, "peft_config") and hasattr(net, "get_base_model")
