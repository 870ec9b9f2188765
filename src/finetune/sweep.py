"""Multirun plumbing: record a job's failure in its own dir, size its threads, and report at the end.

Kept free of torch and Lightning imports: Hydra instantiates ``SweepReport`` before any job runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

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


def record_outcome(output_dir: Path, status: str, error: BaseException) -> None:
    """Write ``metrics.json`` (status and reason) and ``traceback.txt`` into the job's dir, atomically.

    Under DDP only rank 0 writes ``metrics.json``; the other ranks leave ``traceback.rank<N>.txt``.
    """
    from finetune.distributed import is_rank_zero, rank_tag
    from finetune.utils.run import write_json_atomic

    output_dir.mkdir(parents=True, exist_ok=True)
    reason = f"{type(error).__name__}: {error}".splitlines()[0]
    if not is_rank_zero():
        (output_dir / f"traceback.{rank_tag()}.txt").write_text("".join(traceback.format_exception(error)))
        return
    (output_dir / "traceback.txt").write_text("".join(traceback.format_exception(error)))
    summary_path = output_dir / "metrics.json"
    summary: dict[str, Any] = {}
    if summary_path.is_file():  # keep what a finished fit already wrote
        summary = json.loads(summary_path.read_text())
    summary.update({"status": status, "reason": reason})
    summary.setdefault("metrics", {})
    write_json_atomic(summary_path, summary)


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
        jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()) if sweep_dir.is_dir() else []
        statuses = [_status(job) for job in jobs]
        try:
            from finetune.report import write_report

            written = write_report(sweep_dir, over=tuple(self.over))
            log.info("sweep report: %s", ", ".join(str(p) for p in written.values()))
        except Exception as error:  # a report must never hide the jobs' own results
            log.warning("could not write the sweep report: %s", error)
        failed = [job.name for job, status in zip(jobs, statuses, strict=True) if status != "completed"]
        if failed:
            message = f"{len(failed)} of {len(jobs)} jobs did not complete (jobs {', '.join(failed)}); see {sweep_dir}"
            log.error(message)
            raise SystemExit(f"error: {message}")
        log.info("all %d jobs completed: %s", len(jobs), sweep_dir)


def _status(job_dir: Path) -> str:
    try:
        return json.loads((job_dir / "metrics.json").read_text()).get("status", "unknown")
    except (OSError, ValueError):
        return "missing"
