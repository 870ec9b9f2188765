"""Multirun plumbing: is this a multirun job, its threads, and the report at the end.

Kept free of torch and Lightning imports: Hydra instantiates ``SweepReport`` before any job runs.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from finetune.run.outcome import read_status

log = logging.getLogger(__name__)


def in_multirun() -> bool:
    """True inside a job of ``python train.py -m ...``."""
    return HydraConfig.initialized() and str(HydraConfig.get().mode) == "RunMode.MULTIRUN"


def sweeper_needs_metric() -> bool:
    """True in a multirun job whose sweeper ranks jobs by their returned value (Optuna; Hydra's basic grid
    sweeper ignores it)."""
    if not in_multirun():
        return False
    target = str(HydraConfig.get().sweeper.get("_target_", ""))
    return not target.endswith("BasicSweeper")


# What a failed job returns to the sweeper: NaN, which Optuna records as a failed trial.
FAILED_TRIAL = math.nan


def threads_per_job() -> int | None:
    """CPU threads for one job under the joblib launcher, so that jobs × threads stays within the cores."""
    if not HydraConfig.initialized():
        return None
    launcher = HydraConfig.get().launcher
    if "joblib" not in str(launcher.get("_target_", "")):
        return None
    cores = os.cpu_count() or 1
    jobs = launcher.get("n_jobs") or -1
    jobs = cores if jobs < 0 else jobs
    return max(1, cores // jobs)


class SweepReport(Callback):
    """At the end of a multirun: write the report into the sweep dir, then fail the command if any job failed.

    Args:
        over: overrides to average over in the grouped table (``seed`` by default).
    """

    def __init__(self, over: list[str] | None = None) -> None:
        self.over = list(over or ["seed"])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        failed, jobs = write_sweep_report(sweep_dir, self.over)
        if failed:
            message = f"{len(failed)} of {jobs} jobs did not complete (jobs {', '.join(failed)}); see {sweep_dir}"
            log.error(message)
            raise SystemExit(f"error: {message}")
        log.info("all %d jobs completed: %s", jobs, sweep_dir)


def write_sweep_report(sweep_dir: Path, over: list[str]) -> tuple[list[str], int]:
    """Write the report of the jobs in ``sweep_dir``; the jobs that did not complete, and how many jobs there are."""
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()) if sweep_dir.is_dir() else []
    statuses = [read_status(job) or "missing" for job in jobs]
    try:
        from finetune.report import write_report

        written = write_report(sweep_dir, over=tuple(over))
        log.info("sweep report: %s", ", ".join(str(p) for p in written.values()))
    except Exception as error:  # a report must never hide the jobs' own results
        log.warning("could not write the sweep report: %s", error)
    return [job.name for job, status in zip(jobs, statuses, strict=True) if status != "completed"], len(jobs)


def report_interrupted_sweep() -> None:
    """After Ctrl-C in a multirun job, the report of the jobs so far (Hydra never calls ``on_multirun_end`` then)."""
    hydra = HydraConfig.get()
    settings = hydra.callbacks.get("sweep_report") if hydra.get("callbacks") else None
    if settings is None:
        return
    failed, jobs = write_sweep_report(Path(hydra.sweep.dir), list(settings.get("over") or ["seed"]))
    log.error("multirun interrupted: %d of %d jobs did not complete; report in %s", len(failed), jobs, hydra.sweep.dir)
