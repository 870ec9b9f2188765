"""Build the callbacks and loggers bags (each config group holds a dict of ``_target_`` nodes); plain containers."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_bag(bag: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict config; null entries (switched off) are skipped."""
    from hydra.utils import instantiate

    if not bag:
        return []
    return [instantiate(node) for node in bag.values() if isinstance(node, DictConfig) and "_target_" in node]


def without_logger_only(callbacks: list[Any], loggers: list[Any]) -> list[Any]:
    """``callbacks`` less those that only feed a logger (the learning-rate monitor) when there is none
    (``logger=none``): Lightning would stop the run at its start for them."""
    if loggers:
        return callbacks
    from lightning.pytorch.callbacks import DeviceStatsMonitor, LearningRateMonitor

    kept = [c for c in callbacks if not isinstance(c, (LearningRateMonitor, DeviceStatsMonitor))]
    if len(kept) < len(callbacks):
        log.info("no logger: the learning-rate and device monitors are left out (their values go to loggers only)")
    return kept


def plain(value: Any) -> Any:
    """A Hydra ``ListConfig``/``DictConfig`` as a plain list/dict (other values unchanged): whatever ends up in a
    checkpoint must load with ``torch.load(weights_only=True)``, which refuses OmegaConf's classes."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
