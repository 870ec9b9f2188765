"""Build the callbacks and loggers bags: each config group holds a dict of ``_target_`` nodes."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def instantiate_bag(bag: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict config; null entries (switched off) are skipped."""
    from hydra.utils import instantiate

    if not bag:
        return []
    return [instantiate(node) for node in bag.values() if isinstance(node, DictConfig) and "_target_" in node]
