"""The preflight's check of ``adapter=...``: the adapter attaches to the network (built on the meta device from its
config: no weights read), its target modules exist, and the task head is trained and saved with it."""

from __future__ import annotations

import copy
import importlib.util
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from finetune.adapters.attach import attach_adapter, parameter_counts, task_head
from finetune.adapters.state import adapter_options
from finetune.errors import UserError

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def check_adapter(model: DictConfig, config: PretrainedConfig, labels: int) -> tuple[str, dict[str, Any]]:
    """The summary line of the adapter and its options (what a checkpoint of it must match); the task type and
    head come from the model's node (``conf/task/``), the network from its config, built on the meta device.

    Raises:
        UserError: an adapter that does not attach, a head it would not save, a quantized random network, or
            quantization without bitsandbytes.
    """
    import torch
    import transformers
    from hydra.utils import instantiate

    if model.net.get("quantization") is not None:
        if model.net.get("random_init"):
            raise UserError("adapter=qlora quantizes pretrained weights; model.net.random_init=true has none (use "
                            "adapter=lora)")  # fmt: skip
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UserError("adapter=qlora needs bitsandbytes (pip install bitsandbytes); or use adapter=lora")
    sized = copy.deepcopy(config)
    sized.num_labels = max(labels, 1)
    with torch.device("meta"):
        net = getattr(transformers, model.net.auto_class).from_config(sized)
        head = task_head(net, model.get("head_modules", "auto"))
        adapted = attach_adapter(net, instantiate(model.adapter), model.get("adapter_task_type"), head)
    unsaved = [name for name in head if not _trained_copy(adapted.get_base_model(), name)]
    if unsaved:
        raise UserError(
            f"peft would not train and save the task head {unsaved} of {type(net).__name__}; add it to "
            f"adapter.modules_to_save (a reload would otherwise lose it)"
        )
    counts, options = parameter_counts(adapted), adapter_options(adapted)
    rank = f" r={options['r']}" if "r" in options else ""
    layers = len(getattr(adapted.base_model, "targeted_module_names", []) or [])
    line = (
        f"adapter: {options['peft_type']}{rank} on {layers} layers; trainable {counts['trainable']:,} of "
        f"{counts['total']:,} parameters ({counts['trainable_share']:.2%}); head trained and saved: "
        f"{', '.join(head) or 'none'}"
    )
    return line, options


def _trained_copy(net: Any, name: str) -> bool:
    """Whether peft wrapped the module ``name`` to train a copy of it and save that copy with the adapter."""
    wrapper = getattr(net, name, None)
    copies = getattr(wrapper, "modules_to_save", None)
    if not copies:
        return False
    return all(p.requires_grad for module in copies.values() for p in module.parameters())
