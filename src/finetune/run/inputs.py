"""The half of ``validate=true`` that reads inputs: the data module's ``preflight`` and the module class's
``check_inputs`` (model config, checkpoint), then the metric names the module logs.

Nothing is tokenized and no model weights load (the packaged model's files are still hash-checked). Each check
is the owner's own (``TaskDataModule.preflight`` is the same code its ``setup`` runs), so a real run and a
validation fail the same way, and a new task adds no branch here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from finetune.errors import UserError

if TYPE_CHECKING:
    pass

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
    # The data checks what the run will read; the module class checks its network (and checkpoint) against it.
    lines = [*datamodule.preflight(), *module_class.check_inputs(cfg.model, datamodule, cfg.get("ckpt_path"))]
    if cfg.get("train") and cfg.get("ckpt_path"):  # after the checks that say what the checkpoint is
        check_resumable(str(cfg.ckpt_path))
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


def check_resumable(path: str) -> None:
    """Fitting from ``path`` needs the optimizer's state (a run's ``last.ckpt``), not weights only (its best)."""
    from finetune.trainer.checkpoints import read_checkpoint

    if "optimizer_states" not in read_checkpoint(path):
        raise UserError(
            f"ckpt_path={path} holds weights only (a run's best checkpoint); fitting continues from a checkpoint "
            "with the optimizer's state (checkpoints/last.ckpt of a run), or test this one with train=false"
        )


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
