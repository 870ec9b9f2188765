"""Tracker setup: wandb offline unless credentials exist, runs named after their overrides."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning.pytorch.loggers import WandbLogger


def wandb_credentials_present() -> bool:
    """True when wandb could log in: an API key in the environment or a ``wandb login`` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc_path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        hosts = netrc.netrc(str(netrc_path)).hosts
    except (OSError, netrc.NetrcParseError):
        return False
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("//")[-1]
    return base in hosts


def job_name_and_group(task_name: str) -> tuple[str, str]:
    """Default run name (the job's overrides) and group (the multirun, or the task for single runs)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return task_name, task_name
    hydra_cfg = HydraConfig.get()
    name = hydra_cfg.job.override_dirname or task_name
    if str(hydra_cfg.mode) == "RunMode.MULTIRUN":
        return name, f"{task_name}/{Path(hydra_cfg.sweep.dir).name}"
    return name, task_name


def wandb_logger(
    save_dir: str,
    project: str,
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    offline: bool | str = "auto",
    log_model: bool = False,
    task_name: str = "train",
    **kwargs: Any,
) -> WandbLogger:
    """A ``WandbLogger`` writing under ``<save_dir>/wandb``; ``offline="auto"`` goes online only with credentials.

    Args:
        save_dir: the run dir; wandb files land in ``<save_dir>/wandb``.
        project: wandb project.
        name: run name; None uses the job's overrides (``optimizer=adam,optimizer.lr=3e-05``).
        group: run group; None groups the jobs of a multirun together.
        tags: run tags.
        offline: True, False, or "auto".
        log_model: upload checkpoints as artifacts (needs online mode).
        task_name: the config's task name, used by the name and group defaults.
        **kwargs: passed on to ``wandb.init``.
    """
    from lightning.pytorch.loggers import WandbLogger

    if offline == "auto":
        offline = not wandb_credentials_present()
    default_name, default_group = job_name_and_group(task_name)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name or default_name,
        group=group or default_group,
        tags=list(tags or []),
        offline=bool(offline),
        log_model=log_model,
        **kwargs,
    )
