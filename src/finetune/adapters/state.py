"""Adapter-only checkpoints. A peft run's checkpoint holds the trainable weights (adapter and task head) with the
whole training state (optimizer, schedule, random streams, loader position), not the frozen base, plus the
SHA-256 of the base's weights; loading fills the base in from the network just built, after checking its hash,
so exact resume, ``trainer.test`` and ``eval.py`` read such a checkpoint as they read a full one.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from finetune.adapters.attach import is_adapted
from finetune.errors import UserError
from finetune.optim.param_groups import unwrapped_name

if TYPE_CHECKING:
    import torch

RECORD = "adapter"  # the checkpoint's entry describing its adapter and base
ORIGINAL = ".original_module."  # peft's untouched copy of a module it trains fully
OPTIONS = ("peft_type", "r", "lora_alpha", "use_dora", "use_rslora")  # what shapes the saved adapter weights


def base_digest(net: torch.nn.Module) -> str:
    """SHA-256 of the frozen base's weights (each one's name, dtype, shape and bytes, in name order). The head's
    untrained original, which peft keeps beside the trained copy, is a random draw and no part of the base."""
    import torch

    digest = hashlib.sha256()
    frozen = sorted(
        (unwrapped_name(n), p) for n, p in net.named_parameters() if not p.requires_grad and ORIGINAL not in n
    )
    for name, param in frozen:
        tensor = param.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(param.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def adapter_options(net: Any) -> dict[str, Any]:
    """The saved adapter's shape-giving options (type, rank, DoRA ...)."""
    config = net.peft_config["default"]
    options = {key: getattr(config, key) for key in OPTIONS if hasattr(config, key)}
    options["peft_type"] = str(getattr(config.peft_type, "value", config.peft_type))
    return options


def trainable_keys(net: torch.nn.Module) -> set[str]:
    """The state-dict keys (``net.<name>``) of the trainable weights; take them before a strategy wraps ``net``."""
    return {f"net.{unwrapped_name(n)}" for n, p in net.named_parameters() if p.requires_grad}


def keep_trainable(checkpoint: dict[str, Any], net: Any, keys: set[str], digest: str) -> None:
    """Drop the frozen base from ``checkpoint`` (in place) and record the adapter and the base's hash."""
    state = checkpoint["state_dict"]
    checkpoint["state_dict"] = {k: v for k, v in state.items() if not k.startswith("net.") or k in keys}
    base = net.get_base_model()
    checkpoint[RECORD] = {
        **adapter_options(net),
        "base_model": str(getattr(base, "name_or_path", "") or type(base).__name__),
        "base_sha256": digest,
    }


def fill_frozen(checkpoint: dict[str, Any], module: Any, digest: str | None, where: str) -> None:
    """Complete an adapter-only ``checkpoint`` (in place) with ``module``'s frozen weights, after checking that
    the checkpoint's kind (adapter or full) and base are this module's.

    Raises:
        UserError: a full checkpoint for an adapter run or the reverse, or another base model.
    """
    record, adapted = checkpoint.get(RECORD), is_adapted(module.net)
    if record is None and not adapted:
        return
    check_kind(record, adapter_options(module.net) if adapted else None, where)
    digest = digest or base_digest(module.net)
    if record["base_sha256"] != digest:
        raise UserError(
            f"checkpoint {where} was trained on another base model ({record['base_model']}, weights sha256 "
            f"{record['base_sha256'][:12]}), not this one (sha256 {digest[:12]}); use the base it was trained on "
            "(model.net.pretrained, and model.net.init_seed for a random one), or set ckpt_path=null"
        )
    saved = checkpoint["state_dict"]
    # parameters and buffers only: a 4-bit base's state dict also lists quantization statistics, which
    # bitsandbytes keeps on its weights and would reject as unexpected keys when loaded back
    tensors = {name for name, _ in (*module.named_parameters(), *module.named_buffers())}
    frozen = {k: v for k, v in module.state_dict().items() if k.startswith("net.") and k in tensors and k not in saved}
    checkpoint["state_dict"] = {**frozen, **saved}


def check_kind(record: dict[str, Any] | None, options: dict[str, Any] | None, where: str) -> None:
    """The checkpoint holds what the config trains: adapters of the same type and rank, or a full model."""
    if record is None and options is None:
        return
    if record is None:
        raise UserError(f"checkpoint {where} holds a full fine-tune, but this config trains {options['peft_type']} "
                        "adapters; resume it with peft=none, or set ckpt_path=null")  # fmt: skip
    if options is None:
        raise UserError(f"checkpoint {where} holds {record['peft_type']} adapters only, but this config trains the "
                        "whole model (peft=none); resume it with the peft option it was trained with")  # fmt: skip
    differ = [f"{k}={record.get(k)} there, {v} here" for k, v in options.items() if record.get(k, v) != v]
    if differ:
        raise UserError(f"checkpoint {where} holds another adapter ({'; '.join(differ)}); resume with the peft "
                        "options it was trained with, or set ckpt_path=null")  # fmt: skip
