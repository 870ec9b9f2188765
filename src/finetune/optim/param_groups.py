"""Parameter groups for fine-tuning: weight decay by shape, layer-wise learning-rate decay, a head learning rate,
and freezing the bottom of the network.

Depth is what layer-wise decay and freezing share: 0 for the embeddings, ``i + 1`` for encoder layer ``i``,
``num_layers + 1`` for everything above (pooler, task head).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
# Encoder blocks are "<prefix>.encoder.layer.3." (BERT, RoBERTa), "<prefix>.transformer.layer.3." (DistilBERT), ...
LAYER_INDEX = re.compile(r"\.(?:layer|layers|block|h)\.(\d+)\.")


# Segments FSDP and activation checkpointing insert into parameter names when they wrap a layer.
WRAPPER_SEGMENTS = re.compile(r"(?:_fsdp_wrapped_module|_checkpoint_wrapped_module)\.")
# What peft puts around the network (``base_model.model.``) and around a module it trains fully (its copy).
PEFT_SEGMENTS = re.compile(r"^base_model\.model\.|(?<=\.)modules_to_save\.[^.]+\.")


def unwrapped_name(name: str) -> str:
    """A parameter's name as before FSDP or activation checkpointing wrapped its layer (its state-dict key)."""
    return WRAPPER_SEGMENTS.sub("", name)


def clean_name(name: str) -> str:
    """A parameter's name as in the plain model: unwrapped, and without peft's segments (a head trained beside an
    adapter gets its trained copy's name)."""
    return PEFT_SEGMENTS.sub("", unwrapped_name(name))


def matrix_names(model: torch.nn.Module) -> set[str]:
    """The (clean) names of the parameters with two or more dimensions. Take it before FSDP wraps the model:
    FSDP shows its shards of every parameter as flat 1-D (or empty) tensors."""
    return {clean_name(name) for name, param in model.named_parameters() if param.ndim >= 2}


def num_layers(model: torch.nn.Module) -> int:
    """Number of encoder layers, counted from the parameter names."""
    indices = [int(m.group(1)) for name, _ in model.named_parameters() if (m := LAYER_INDEX.search(name))]
    return max(indices) + 1 if indices else 0


def depth(name: str, layers: int) -> int:
    """0 for embeddings, ``i + 1`` for encoder layer ``i``, ``layers + 1`` above the encoder."""
    match = LAYER_INDEX.search(name)
    if match:
        return int(match.group(1)) + 1
    return 0 if "embed" in name else layers + 1


def is_head(name: str, model: torch.nn.Module) -> bool:
    """True for the task head: parameters outside the pretrained base model (e.g. ``classifier.*``)."""
    model = model.get_base_model() if hasattr(model, "get_base_model") else model  # under peft's wrapper
    prefix = getattr(model, "base_model_prefix", "")
    return bool(prefix) and hasattr(model, prefix) and not name.startswith(f"{prefix}.")


def freeze(model: torch.nn.Module, embeddings: bool = False, first_layers: int = 0) -> int:
    """Stop gradients to the embeddings and/or the first ``first_layers`` encoder layers; returns how many tensors."""
    layers = num_layers(model)
    if not 0 <= first_layers <= layers:
        raise UserError(f"model.freeze_layers={first_layers} but the model has {layers} encoder layers")
    frozen = 0
    for name, param in model.named_parameters():
        d = depth(name, layers)
        if (embeddings and d == 0) or 0 < d <= first_layers:
            param.requires_grad_(False)
            frozen += 1
    return frozen


def param_groups(
    model: torch.nn.Module,
    lr: float,
    layer_decay: float | None = None,
    head_lr: float | None = None,
    matrices: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Named optimizer groups: matrices get the optimizer's weight decay, biases and norm weights none.

    The 2-D rule (nanoGPT) catches every bias and LayerNorm weight of any architecture, unlike a list of names.
    With ``layer_decay`` d, depth k gets ``lr * d ** (top - k)``: the embeddings learn slowest, the top fastest.
    ``head_lr`` sets the task head's rate outright. Frozen parameters are left out. ``matrices``: the names of
    the matrices (``matrix_names``) taken before FSDP flattened them; None: read the shapes now.
    """
    if layer_decay is not None and not 0.0 < layer_decay <= 1.0:
        raise UserError(f"param_groups.layer_decay must be in (0, 1], got {layer_decay}")
    if head_lr is not None and head_lr <= 0:
        raise UserError(f"param_groups.head_lr must be positive, got {head_lr}")
    layers = num_layers(model)
    groups: dict[str, dict[str, Any]] = {}
    for wrapped_name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        name = clean_name(wrapped_name)
        is_matrix = param.ndim >= 2 if matrices is None else name in matrices
        decay = "decay" if is_matrix else "no_decay"
        if head_lr is not None and is_head(name, model):
            key, group_lr = f"head/{decay}", head_lr
        elif layer_decay is not None:
            d = depth(name, layers)
            key, group_lr = f"depth_{d:02d}/{decay}", lr * layer_decay ** (layers + 1 - d)
        else:
            key, group_lr = decay, lr
        group = groups.setdefault(key, {"name": key, "params": [], "lr": group_lr})
        if decay == "no_decay":
            group["weight_decay"] = 0.0
        group["params"].append(param)
    return sorted(groups.values(), key=lambda g: g["name"])


def describe(groups: list[dict[str, Any]], weight_decay: float) -> str:
    """One line per group: name, tensor and element counts, learning rate, weight decay."""
    lines = []
    for g in groups:
        count = sum(p.numel() for p in g["params"])
        wd = g.get("weight_decay", weight_decay)
        lines.append(f"  {g['name']:<20} {len(g['params']):>4} tensors {count:>11,} params  lr={g['lr']:.3g}  wd={wd}")
    return "\n".join(lines)
