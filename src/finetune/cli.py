"""Console scripts. ``finetune-train`` is ``python train.py`` for an installed package."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from finetune.errors import UserError


def config_dir() -> str:
    """The ``conf/`` folder: ``$FINETUNE_CONF``, else ``./conf``, else the one beside the source checkout."""
    candidates = [os.environ.get("FINETUNE_CONF"), "conf", Path(__file__).resolve().parents[2] / "conf"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train.yaml").is_file():
            return str(Path(candidate).resolve())
    raise SystemExit("error: no conf/train.yaml found; run from the project folder or set FINETUNE_CONF")


def run_task(cfg) -> float | None:
    """The Hydra task: resume or start the run (``finetune.resume``), train; on failure record it in the job's dir.

    A single run turns a ``UserError`` into one line on stderr and exit status 2 (other errors keep their
    traceback). A multirun job returns NaN instead, so the sweep goes on; ``finetune.sweep.SweepReport``
    counts the failures at the end and exits non-zero. A run stopped by a cluster's signal exits with
    128 + the signal's number after requeueing its SLURM job (``finetune.preemption``).
    """
    from finetune.distributed import is_rank_zero
    from finetune.preemption import RunPreempted, requeue_slurm_job
    from finetune.resume import plan_resume
    from finetune.sweep import FAILED_TRIAL, in_multirun, record_outcome
    from finetune.train import main  # imported here so --help and --cfg never load torch

    try:
        # Reads only: the run is moved into the run it continues after the preflight passed (a failure before
        # that is recorded in this command's own dir, never in the run it pointed at).
        plan = plan_resume(cfg, multirun=in_multirun(), rank_zero=is_rank_zero())
        return main(cfg, plan)
    except RunPreempted as preemption:  # metrics.json says interrupted; the checkpoint is saved
        if is_rank_zero():
            requeue_slurm_job()
        print(f"interrupted: {preemption}; rerun the same command to resume", file=sys.stderr)
        raise SystemExit(preemption.exit_code) from None
    except KeyboardInterrupt as error:
        record_outcome(Path(cfg.paths.output_dir), "interrupted", error)
        raise
    except Exception as error:
        output_dir = Path(cfg.paths.output_dir)
        record_outcome(output_dir, "failed", error)
        if in_multirun():
            logging.getLogger(__name__).error("job failed: %s (%s)", error, output_dir / "traceback.txt")
            return FAILED_TRIAL
        if isinstance(error, UserError):
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        raise


def train_cli() -> None:
    """Entry point of the ``finetune-train`` console script."""
    import hydra

    hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")(run_task)()
