"""Console scripts. ``finetune-train`` is ``python train.py`` for an installed package."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from finetune.errors import UserError, causes, refuse


def external_rank_suffix() -> str:
    """``_rank<N>`` in a rank N > 0 that an external launcher started (torchrun's ``RANK``, srun's
    ``SLURM_PROCID``), else ``""``: each such rank runs its own ``train.py`` in the shared run dir, so its log
    file (``conf/hydra/default.yaml``) needs a name of its own. Lightning's own DDP children are named by
    ``finetune.trainer.distributed.job_command`` instead."""
    from finetune.trainer.distributed import launcher_rank

    rank = launcher_rank()
    return f"_rank{rank}" if rank not in (None, "", "0") else ""


def register_resolvers() -> None:
    """The config's own interpolations, registered once before Hydra composes (every command imports this)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("rank_suffix"):
        OmegaConf.register_new_resolver("rank_suffix", external_rank_suffix)


register_resolvers()


def config_dir() -> str:
    """The ``conf/`` folder: ``$FINETUNE_CONF``, else ``./conf``, else the one beside the source checkout."""
    candidates = [os.environ.get("FINETUNE_CONF"), "conf", Path(__file__).resolve().parents[2] / "conf"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train.yaml").is_file():
            return str(Path(candidate).resolve())
    raise SystemExit("error: no conf/train.yaml found; run from the project folder or set FINETUNE_CONF")


def run_task(cfg, prepare: Callable | None = None, finish: Callable | None = None) -> float | None:
    """The Hydra task: resume or start the run (``finetune.run.resume``), train; on failure record it in the job's dir.
    ``prepare(cfg) -> cfg`` turns the command's config into the one to run (``rerun=<dir>`` by default: that run's
    saved config; ``eval.py``: a test-only config of a finished run); ``finish(cfg)`` reports after it ran (the
    rerun's comparison, the eval's table). Both run inside the same error handling.

    A ``UserError`` is one line on stderr and exit status 2 (other errors keep their traceback); a multirun job
    returns NaN, so the sweep goes on (``SweepReport`` counts failures at the end). A cluster's signal exits with
    128 + its number after requeueing the SLURM job. A failure is recorded only in a dir this command made or
    claimed, never in a run it was pointed at. This job's wandb run and DDP process group are always closed.
    """
    from finetune.run.outcome import FAILED, INTERRUPTED, holds_run, record_outcome
    from finetune.run.resume import plan_resume
    from finetune.run.sweep import FAILED_TRIAL, in_multirun
    from finetune.trainer.distributed import is_rank_zero, rank_tag
    from finetune.trainer.preemption import RunPreempted

    ours = not holds_run(Path(cfg.paths.output_dir))  # False: Hydra's dir is an earlier run (continued once claimed)
    if prepare is None and cfg.get("rerun"):  # rerun=<dir>: that run's saved config, in this dir
        prepare, finish = rerun_config_of, report_rerun
    plan = None

    def record(status: str, error: BaseException) -> None:
        if ours or (plan is not None and plan.claimed):
            record_outcome(Path(cfg.paths.output_dir), status, error, rank_zero=is_rank_zero(), rank=rank_tag())

    try:
        # Reads only: the run is moved into the run it continues after the preflight passed (a failure before
        # that is recorded in this command's own dir, never in the run it pointed at).
        cfg = prepare(cfg) if prepare else cfg
        plan = plan_resume(cfg, multirun=in_multirun(), rank_zero=is_rank_zero())
        value = train_job(cfg, plan)
        if finish is not None and is_rank_zero():
            finish(cfg)
        return value
    except RunPreempted as preemption:  # a fit saved its checkpoint and metrics.json says interrupted
        _exit_preempted(preemption, record)
    except KeyboardInterrupt as error:  # Ctrl-C: the job says so, and a multirun still gets its report
        record(INTERRUPTED, error)
        _exit_interrupted()
    except Exception as raised:
        error = user_error_inside(raised)  # a UserError wrapped by Hydra's instantiate is still a UserError
        record(FAILED, error)
        if in_multirun():
            logging.getLogger(__name__).error("job failed: %s (%s)", error, Path(cfg.paths.output_dir))
            return FAILED_TRIAL
        if isinstance(error, UserError):
            raise refuse(str(error)) from None
        raise


def _exit_preempted(preemption: BaseException, record: Callable) -> None:
    """A cluster's signal: requeue the SLURM job (rank 0) and exit with 128 + the signal's number; stopped while
    testing (no checkpoint, no summary yet), ``record`` the job interrupted first."""
    from finetune.run.outcome import INTERRUPTED
    from finetune.trainer.distributed import is_rank_zero

    if getattr(preemption, "checkpoint", None) is None:
        record(INTERRUPTED, preemption)
    from finetune.trainer.preemption import requeue_slurm_job

    if is_rank_zero():
        requeue_slurm_job()
    print(f"interrupted: {preemption}; rerun the same command to resume", file=sys.stderr)
    raise SystemExit(preemption.exit_code) from None


def _exit_interrupted() -> None:
    """Ctrl-C: a multirun still gets its report; exit status 130."""
    from finetune.run.sweep import in_multirun, report_interrupted_sweep
    from finetune.trainer.distributed import is_rank_zero

    if in_multirun() and is_rank_zero():
        report_interrupted_sweep()
    print("interrupted (Ctrl-C); rerun the same command to resume", file=sys.stderr)
    raise SystemExit(130) from None


def train_job(cfg, plan) -> float | None:
    """``finetune.train.main`` in this job's own DDP process group and wandb run, both closed afterwards (a
    multirun's next job starts its own)."""
    from finetune.train import main  # imported here so --help and --cfg never load torch
    from finetune.trainer.distributed import one_job_of_processes
    from finetune.trainer.loggers import finish_wandb

    with one_job_of_processes():
        try:
            return main(cfg, plan)
        finally:
            finish_wandb()


def rerun_config_of(cfg):
    """``rerun=<run dir>``: that run's saved config with this command's ``key=value`` overrides, saved as this
    run's config (``finetune.run.rerun``)."""
    from hydra.core.hydra_config import HydraConfig

    from finetune.run.rerun import rerun_config, save_rerun_config

    hydra = HydraConfig.get()
    rerun = rerun_config(cfg, list(hydra.overrides.task), dict(hydra.runtime.choices))
    save_rerun_config(rerun)
    return rerun


def report_rerun(cfg) -> None:
    """Print the metrics of the rerun and of the run it repeated side by side (``finetune.run.rerun.compare``)."""
    from finetune.run.rerun import compare

    print("\n".join(compare(Path(str(cfg.rerun)), Path(cfg.paths.output_dir))))


# Settings that moved, for the hint in Hydra's "could not override" line.
MOVED = {"data.global_batch_size": "global_batch_size", "data.micro_batch_size": "micro_batch_size"}


@contextmanager
def errors_in_one_line() -> Iterator[None]:
    """Around ``hydra.main``: a config Hydra cannot compose (an unknown key or option, an override it cannot
    parse) is one line and exit status 2, not Hydra's block and exit 1; any other crash prints its traceback
    with secrets masked (``finetune.run.secrets``), since overrides such as ``+my_api_key=...`` appear in it."""
    from finetune.run.secrets import RedactingStream

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing; DDP's ranks inherit it
    stderr, sys.stderr = sys.stderr, RedactingStream(sys.stderr)  # Hydra writes a failed job's overrides there
    try:
        yield
    except BrokenPipeError:  # the reader closed its end (python train.py --help | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the interpreter's final flush fails too
        raise SystemExit(0) from None
    except Exception as error:
        from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

        from finetune.run.secrets import redact_argv_secrets

        if isinstance(error, (ConfigCompositionException, MissingConfigException, OverrideParseException)):
            line = hydra_one_line(error)
            line += "".join(f"; {old} is now {new}" for old, new in MOVED.items() if f"'{old}'" in line)
            override = getattr(error, "override", None)
            if isinstance(error, OverrideParseException) and override and override not in line:
                line = f"cannot parse the override '{override}': {line}"
            print(f"error: {redact_argv_secrets(line)}", file=sys.stderr)
            raise SystemExit(2) from None
        sys.stderr.write(redact_argv_secrets("".join(traceback.format_exception(error))))
        raise SystemExit(1) from None
    finally:
        sys.stderr = stderr


# Lines of Hydra's messages that say nothing about the mistake.
HYDRA_NOISE = ("See https://hydra.cc", "Set the environment", "provider=", "full_key:", "object_type=", "Config search")


def hydra_one_line(error: BaseException) -> str:
    """Hydra's multi-line message (and its OmegaConf cause) as one line; option lists joined by commas."""
    parts = [str(error)] + ([str(error.__cause__)] if error.__cause__ is not None else [])
    lines = [line.strip() for part in parts for line in part.splitlines()]
    kept: list[str] = []
    for line in lines:
        if not line or line.startswith(HYDRA_NOISE):
            continue
        if kept and kept[-1].endswith(":") and not line.endswith(":"):
            kept[-1] += f" {line}"  # the first item of a list
        elif kept and ":" in kept[-1] and " " not in line:
            kept[-1] += f", {line}"  # the next items
        else:
            kept.append(line.rstrip("."))
    return "; ".join(kept)


def user_error_inside(error: BaseException) -> BaseException:
    """The ``UserError`` in ``error``'s chain of causes (Hydra wraps a constructor's), else ``error`` itself."""
    return next((cause for cause in causes(error) if isinstance(cause, UserError)), error)


def train_cli() -> None:
    """Entry point of the ``finetune-train`` console script."""
    import hydra

    with errors_in_one_line():
        hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")(run_task)()
