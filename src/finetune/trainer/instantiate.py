"""Build the callbacks and loggers bags (each config group holds a dict of ``_target_`` nodes); plain containers."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def instantiate_bag(bag: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict config; null entries (switched off) are skipped."""
    from hydra.utils import instantiate

    if not bag:
        return []
    return [instantiate(node) for node in bag.values() if isinstance(node, DictConfig) and "_target_" in node]


def plain(value: Any) -> Any:
    """A Hydra ``ListConfig``/``DictConfig`` as a plain list/dict (other values unchanged): whatever ends up in a
    checkpoint must load with ``torch.load(weights_only=True)``, which refuses OmegaConf's classes."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
