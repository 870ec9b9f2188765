"""Tracker setup: wandb offline unless credentials exist, runs named after their overrides; a CSV logger that
continues its file when a run resumes."""

from __future__ import annotations

import csv
import hashlib
import logging
import netrc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch.loggers import CSVLogger

if TYPE_CHECKING:
    from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


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


def wandb_server() -> str:
    """The wandb server this process would talk to."""
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")


def wandb_server_reachable(timeout: float = 3.0) -> bool:
    """A TCP connection to the wandb server opens within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(wandb_server())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _offline(offline: bool | str, save_dir: str) -> bool:
    """``auto``: online only with credentials; and offline, with one warning, when the server cannot be reached
    (else ``wandb.init`` waits minutes for it)."""
    chosen = not wandb_credentials_present() if offline == "auto" else bool(offline)
    if not chosen and not wandb_server_reachable():
        log.warning("wandb: cannot reach %s; logging offline (upload later: wandb sync %s/wandb/offline-run-*)",
                    wandb_server(), save_dir)  # fmt: skip
        return True
    return chosen


def job_name_and_group(task_name: str) -> tuple[str, str]:
    """Default run name (the job's overrides) and group (the multirun, or the task for single runs)."""
    from hydra.core.hydra_config import HydraConfig

    from finetune.run.secrets import redact_text

    if not HydraConfig.initialized():
        return task_name, task_name
    hydra_cfg = HydraConfig.get()
    name = redact_text(hydra_cfg.job.override_dirname) or task_name  # +api_key=... must not name the run
    if str(hydra_cfg.mode) == "RunMode.MULTIRUN":
        return name, f"{task_name}/{Path(hydra_cfg.sweep.dir).name}"
    return name, task_name


def wandb_run_id(run_dir: str | Path) -> str:
    """The wandb run id of a run dir: a resumed run (same dir) continues the same wandb run."""
    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


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

    from finetune.run.secrets import redact_text, redacted_argv
    from finetune.trainer.compat import drop_wandb_anonymous

    offline = _offline(offline, save_dir)
    default_name, default_group = job_name_and_group(task_name)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    # One wandb run per run dir: a resumed run (same dir) continues the same wandb run.
    kwargs.setdefault("id", wandb_run_id(save_dir))
    kwargs.setdefault("resume", "allow")
    logger = WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name or default_name,
        group=group or default_group,
        tags=[redact_text(str(tag)) for tag in tags or []],  # wandb stores them in its binary run file
        offline=bool(offline),
        log_model=log_model,
        **kwargs,
    )
    drop_wandb_anonymous(logger)
    with redacted_argv():  # wandb.init records the command line (+api_key=... too) in the run's metadata
        _ = logger.experiment  # so start the run now; train() logs the hyperparameters right after anyway
    return logger


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger (``<save_dir>/<name>/metrics.csv``), which appends to the file of a resumed run
    instead of deleting it."""

    @property
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        metrics_file = Path(self.log_dir) / "metrics.csv"
        kept = metrics_file.with_name(".metrics.csv.kept")
        if metrics_file.is_file():  # Lightning's writer deletes an existing file: keep it aside meanwhile
            os.replace(metrics_file, kept)
        writer = super().experiment
        if kept.is_file():
            os.replace(kept, metrics_file)
            with metrics_file.open(newline="") as handle:
                writer.metrics_keys = sorted(next(csv.reader(handle), []))  # the header it was written with
        return writer


def finish_wandb() -> None:
    """Close this job's wandb run, so the jobs of a multirun never write into each other's runs."""
    import sys

    if "wandb" in sys.modules:  # only if this job used it: importing wandb costs a second
        import wandb

        if wandb.run is not None:
            wandb.finish()
