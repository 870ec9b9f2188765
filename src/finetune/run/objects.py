"""Build the optimizer, the callbacks and the trainer as the run will, before any work, and throw them away.

Their constructors know rules no config check repeats (torch's optimizer ranges, Lightning's trainer flags,
a callback's own arguments); asked in the preflight, each objection is one line and ``validate=true`` fails as a
real run would. The run builds them again after it claimed its dir, since their paths name that dir.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig

from finetune.errors import UserError


def check_objects(cfg: DictConfig) -> None:
    """Raise ``UserError`` naming the config node whose object does not build, with the constructor's reason."""
    from hydra.utils import instantiate

    _built("optimizer", lambda: _probe_optimizer(instantiate(cfg.optimizer)))
    callbacks: list[Any] = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, DictConfig) and "_target_" in node:
            callbacks.append(_built(f"callbacks.{name}", lambda node=node: instantiate(node)))
    if "_target_" in cfg.get("trainer", {}):
        check_accelerator(cfg.trainer)
        _built("trainer", lambda: _probe_trainer(cfg, callbacks))


def check_accelerator(trainer: DictConfig) -> None:
    """A GPU trainer on a machine without one is one line naming what is missing (Lightning's own message,
    "No supported gpu backend found!", names neither the setting nor the way out)."""
    import torch

    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator} needs a CUDA GPU and this machine has none "
            "(torch.cuda.is_available() is False): use trainer=cpu, or trainer=ddp_cpu for several CPU processes"
        )


def check_trainer(cfg: DictConfig) -> None:
    """``predict.py``: the trainer builds from ``cfg.trainer`` (no callbacks, no logger), else one line."""
    check_accelerator(cfg.trainer)
    _built("trainer", lambda: _probe_trainer(cfg, []))


def _probe_optimizer(partial: Any) -> Any:
    """The optimizer on one stand-in parameter: torch checks lr, betas, momentum, weight decay ... there."""
    import torch

    return partial([torch.nn.Parameter(torch.zeros(2))])


def _probe_trainer(cfg: DictConfig, callbacks: list[Any]) -> Any:
    """The trainer with the run's callbacks and, when the run has loggers, a stand-in logger (Lightning's default,
    which writes nothing until it logs; building wandb's would contact its server). Without one, the run leaves
    the logger-only callbacks out (``finetune.trainer.instantiate.without_logger_only``)."""
    from hydra.utils import instantiate

    from finetune.trainer.precision import resolve_precision

    precision = resolve_precision(cfg.trainer.get("precision", "32"))
    has_logger = any(isinstance(node, DictConfig) and "_target_" in node for node in (cfg.get("logger") or {}).values())
    with _quiet("lightning.pytorch", "lightning.fabric"):  # its device lines are printed once, by the run
        return instantiate(cfg.trainer, precision=precision, callbacks=callbacks, logger=has_logger)


def _built(key: str, build: Callable[[], Any]) -> Any:
    from hydra.errors import InstantiationException

    try:
        return build()
    except UserError:
        raise
    except (InstantiationException, ValueError, TypeError, RuntimeError) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
        if isinstance(cause, UserError):
            raise cause from None
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise UserError(f"{key} does not build: {first} (check the {key}.* settings)") from None


@contextmanager
def _quiet(*names: str):
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
