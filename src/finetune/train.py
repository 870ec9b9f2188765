"""``train(cfg)``: the whole run, top to bottom. ``main(cfg)`` wraps it for the CLI and sweepers."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from finetune.models.net_builder import NetBuilder
from finetune.run import provenance, rerun
from finetune.run.console import quiet_libraries
from finetune.run.outcome import COMPLETED, INTERRUPTED, earlier_metrics, write_summary
from finetune.run.preflight import preflight
from finetune.run.resume import ResumePlan, claim_run
from finetune.run.resume_fit import check_resume_fits
from finetune.run.summary import (
    best_checkpoint,
    finished_line,
    log_hyperparameters,
    log_optimized_metric,
    metric_value,
    print_config_tree,
    stop_reason,
    to_floats,
)
from finetune.run.sweep import in_multirun, sweeper_needs_metric, threads_per_job
from finetune.trainer.callbacks import LastCheckpoint
from finetune.trainer.checkpoint_io import VerifiedCheckpointIO
from finetune.trainer.checkpoints import folder_mb
from finetune.trainer.compat import ctrl_c_as_keyboard_interrupt
from finetune.trainer.costs import RunCosts
from finetune.trainer.distributed import (
    apply_global_batch,
    is_fsdp,
    is_rank_zero,
    use_job_command_for_ddp_children,
)
from finetune.trainer.exact_resume import ExactResume
from finetune.trainer.instantiate import instantiate_bag, without_logger_only
from finetune.trainer.precision import resolve_precision
from finetune.trainer.preemption import RunPreempted, signals_stop_testing
from finetune.trainer.progress import ValidationLog

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig, datamodule: Any) -> pl.LightningModule:
    """The LightningModule: the network sized by the data's labels (built by Lightning in ``configure_model``),
    its optimizer, schedule and metrics."""
    net = NetBuilder(instantiate(cfg.model.net), datamodule.model_kwargs)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    optimizer = instantiate(cfg.optimizer)
    module_kwargs = getattr(datamodule, "module_kwargs", {})  # the task's metrics and test sets
    shaping = dict(cfg.get("param_groups") or {})  # layer decay, head lr: for any optimizer
    return instantiate(cfg.model, net=net, optimizer=optimizer, scheduler=scheduler, **module_kwargs, **shaping)


def train(cfg: DictConfig, datamodule: Any = None) -> dict[str, Any]:
    """Fine-tune and test one model as ``cfg`` says; write and return the run summary (``metrics.json``).

    ``datamodule``: the one the preflight built and checked (None: build it from ``cfg.data``).
    """
    started = time.monotonic()
    _prepare_process(cfg, resolved_batch=datamodule is not None)
    datamodule = datamodule or instantiate(cfg.data)
    datamodule.setup()  # now, not in fit: the model's head is sized by the labels found in the data
    module = build_module(cfg, datamodule)
    trainer = build_trainer(cfg)
    log_hyperparameters(trainer, cfg, _record_provenance(cfg, datamodule, trainer.is_global_zero))

    preemption = None  # a cluster's signal: checkpoint saved, no test (the node is about to go)
    if cfg.get("train"):
        try:
            with ctrl_c_as_keyboard_interrupt(trainer):
                trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        except RunPreempted as signal_stop:
            preemption = signal_stop
    # Read now: testing a checkpoint restores the callbacks' saved state (early stopping, timer) too.
    fit_metrics = to_floats(trainer.callback_metrics)
    why_stopped = f"signal/{preemption.signal_name}" if preemption else stop_reason(trainer)
    checkpoint = best_checkpoint(trainer) if cfg.get("train") else cfg.get("ckpt_path")
    if cfg.get("test") and preemption is None:
        # FSDP leaves a fitted module's layers wrapped and its other parameters flat: test a fresh copy, which
        # the strategy wraps anew and fills with the checkpoint's weights.
        tested = build_module(cfg, datamodule) if cfg.get("train") and is_fsdp(trainer.strategy) else module
        with ctrl_c_as_keyboard_interrupt(trainer), signals_stop_testing():
            trainer.test(tested, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)

    status = INTERRUPTED if trainer.interrupted or preemption else COMPLETED
    _drop_resume_state(cfg, trainer, status)  # the best weights stay; the state to resume from may go
    summary = {
        "status": status,
        "stop_reason": why_stopped if cfg.get("train") else "not_trained",
        "run_time_s": round(time.monotonic() - started, 3),
        **_run_facts(cfg, trainer, datamodule, checkpoint),
        "metrics": _final_metrics(cfg, fit_metrics, trainer),
    }
    if trainer.is_global_zero:
        write_summary(Path(cfg.paths.output_dir), summary)
    log_optimized_metric(trainer, cfg, summary["metrics"])
    if preemption is not None:
        raise preemption
    return summary


def _prepare_process(cfg: DictConfig, resolved_batch: bool) -> None:
    """Threads, seeds, the global batch (unless the preflight resolved it) and how DDP's other ranks start."""
    threads = threads_per_job()
    if threads:  # parallel jobs on one machine share its cores
        torch.set_num_threads(threads)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if "batch_size" in cfg.data and not resolved_batch:
        log.info(apply_global_batch(cfg))
    if HydraConfig.initialized():  # DDP's other ranks: single runs of this job, in this run dir
        use_job_command_for_ddp_children(cfg.paths.output_dir, cfg.get("ckpt_path"))


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    """The trainer with the config's callbacks and loggers, exact resume always, checkpoints written in place."""
    loggers = instantiate_bag(cfg.get("logger"))
    callbacks = [
        *without_logger_only(instantiate_bag(cfg.get("callbacks")), loggers),
        ExactResume(),
        RunCosts(),
        ValidationLog(),
    ]
    precision = resolve_precision(cfg.trainer.get("precision", "32"))  # auto: bf16-mixed where it is fast
    # Checkpoints written in place with a checksum (DeepSpeed writes its own sharded folders).
    plugins = [] if "deepspeed" in str(cfg.trainer.get("strategy", "")) else [VerifiedCheckpointIO()]
    return instantiate(
        cfg.trainer, precision=precision, callbacks=callbacks, logger=loggers or False, plugins=plugins or None
    )


def _record_provenance(cfg: DictConfig, datamodule: Any, rank_zero: bool) -> dict[str, Any]:
    """Write ``provenance.json`` (code, packages, hardware, data fingerprints) and ``rerun.sh``; return the record
    for the trackers."""
    record = provenance.collect(cfg, datamodule)
    if rank_zero:
        record = provenance.write(Path(cfg.paths.output_dir), record)
        if cfg.get("train"):  # a test-only run (eval.py) is repeated by its own command
            rerun.write_script(Path(cfg.paths.output_dir))
    return {k: v for k, v in record.items() if k != "diff"}


def _final_metrics(cfg: DictConfig, fit_metrics: dict[str, float], trainer: pl.Trainer) -> dict[str, float]:
    """A run continued in place keeps the values it logged before, unless this leg logged them anew (fitting
    from a finished checkpoint validates nothing: its val/ metrics stay those of the earlier leg)."""
    return {**earlier_metrics(Path(cfg.paths.output_dir)), **fit_metrics, **to_floats(trainer.callback_metrics)}


def _drop_resume_state(cfg: DictConfig, trainer: pl.Trainer, status: str) -> None:
    """A completed fit keeps its best weights and, where ``LastCheckpoint.keep_when_done`` says so, ``last.ckpt``."""
    if status != COMPLETED or not cfg.get("train") or not trainer.is_global_zero:
        return
    for callback in trainer.callbacks:
        if isinstance(callback, LastCheckpoint):
            removed = callback.when_done(in_sweep=in_multirun())
            if removed:
                log.info("run completed: removed %s", ", ".join(p.name for p in removed if p.suffix == ".ckpt"))


def _run_facts(cfg: DictConfig, trainer: pl.Trainer, datamodule: Any, checkpoint: str | None) -> dict[str, Any]:
    return {
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "threads": torch.get_num_threads(),
        "precision": str(trainer.precision),
        "best_checkpoint": checkpoint,
        "checkpoints_kept_mb": folder_mb(Path(cfg.paths.output_dir) / "checkpoints"),
        "resumed_from": cfg.get("ckpt_path") if cfg.get("train") else None,
        "label_names": getattr(datamodule, "label_names", None),
        "costs": next(c for c in trainer.callbacks if isinstance(c, RunCosts)).facts(checkpoint),
    }


def main(cfg: DictConfig, plan: ResumePlan | None = None) -> float | None:
    """Print the config tree, run the preflight (``validate=true`` stops there), then claim the run dir that
    ``plan`` chose (``finetune.run.resume``: lock, move in), train, and return ``cfg.optimized_metric`` for sweepers.

    Nothing is written into an existing run before the preflight passed. ``finetune.cli.run_task`` owns what
    surrounds it: exit codes, the failure record, closing wandb and the DDP process group.
    """
    launch_dir = Path(cfg.paths.output_dir)  # this command's own dir: safe to write before the preflight
    launch_dir.mkdir(parents=True, exist_ok=True)
    quiet_libraries(bool(cfg.get("verbose")))
    if logging.getLogger().handlers:  # Hydra's handlers print and write the log file; lightning adds a second printer
        logging.getLogger("lightning").handlers.clear()
    started = time.perf_counter()
    # resume=<run dir>: the same data and network, a budget that goes on; compared as composed, before the
    # preflight resolves per-device batch sizes from global_batch_size
    check_resume_fits(cfg, plan)
    checked, datamodule = preflight(cfg)  # every run: a mistake in the input fails in seconds, before any weights load
    # After the checks: a mistake is one line, not one line after the whole tree (which .hydra/ holds anyway).
    print_config_tree(cfg, save_to=launch_dir / "config_tree.log" if is_rank_zero() else None, show=cfg.get("verbose"))
    if cfg.get("validate"):
        print("\n".join(["validate=true: OK, nothing was trained", *checked]))
        return None
    log.info("validated in %.2f s:\n%s", time.perf_counter() - started, "\n".join(checked))
    if not cfg.get("verbose"):
        log.info("config: %s (verbose=true prints it here)", launch_dir / "config_tree.log")
    with claim_run(cfg, plan or ResumePlan.fresh(cfg), rank_zero=is_rank_zero()):
        output_dir = Path(cfg.paths.output_dir)  # the run's own dir now: the one it continues, if any
        if is_rank_zero() and output_dir != launch_dir:
            print_config_tree(cfg, save_to=output_dir / "config_tree.log", show=False)
        summary = train(cfg, datamodule)
    log.info(finished_line(summary, cfg.get("monitor")))
    log.info("test metrics: %s", {k: round(v, 4) for k, v in summary["metrics"].items() if k.startswith("test/")})
    log.info("run dir: %s", output_dir)
    if not cfg.get("train"):  # a test-only run has no validation metrics to return to a sweeper
        return None
    return metric_value(summary["metrics"], cfg.get("optimized_metric"), required=sweeper_needs_metric())
