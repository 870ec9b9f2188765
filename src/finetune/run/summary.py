"""Run bookkeeping: the config tree, hyperparameters for trackers, why training stopped, the optimized value.

``metrics.json`` itself is written by ``finetune.run.outcome``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from finetune import atomic

if TYPE_CHECKING:
    import lightning.pytorch as pl

log = logging.getLogger(__name__)
TREE_SECTIONS = ("data", "model", "optimizer", "scheduler", "callbacks", "logger", "trainer", "paths")


def print_config_tree(cfg: DictConfig, save_to: Path | None = None, show: bool = True) -> None:
    """Print (``show``) the resolved config as a rich tree, main sections first, and save the same text."""
    import rich
    import rich.syntax
    import rich.tree

    from finetune.run.secrets import redact

    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    rest = [k for k in cfg if k not in TREE_SECTIONS and k != "hydra"]
    for key in [*[k for k in TREE_SECTIONS if k in cfg], *rest]:
        value = redact({key: cfg[key]}, resolve=True)[key]  # api keys and tokens never reach the screen or file
        text = OmegaConf.to_yaml(value) if isinstance(value, dict) else str(value)
        tree.add(key, style="dim", guide_style="dim").add(rich.syntax.Syntax(text, "yaml"))
    if show:
        rich.print(tree)
    if save_to is not None:  # as wide as the longest line: a file keeps every value whole (a console cuts at 80)
        import rich.console

        console = rich.console.Console(width=_widest(tree) + 16, color_system=None)
        with console.capture() as captured:
            console.print(tree)
        atomic.write_text(save_to, "".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def _widest(tree: Any) -> int:
    """The longest line of the tree's YAML texts (their syntax blocks), at least 80."""
    widths = [80]
    stack = [tree]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        code = getattr(node.label, "code", None)
        if isinstance(code, str):
            widths.extend(len(line) + 8 * 4 for line in code.splitlines())
    return max(widths)


def to_floats(metrics: dict[str, Any]) -> dict[str, float]:
    """Tensors and numbers as plain floats, sorted by name."""
    return {k: float(v) for k, v in sorted(metrics.items())}


def log_hyperparameters(trainer: pl.Trainer, cfg: DictConfig, record: dict[str, Any] | None = None) -> None:
    """Send the resolved config and the provenance ``record`` (``finetune.run.provenance``) to every logger (the
    module logs none itself; the parameter counts follow once the network is built, ``RunCosts``)."""
    if not trainer.loggers:
        return
    hparams = _hparams(cfg)
    if record:
        hparams["provenance"] = record
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)


def _hparams(cfg: DictConfig) -> dict[str, Any]:
    from finetune.run.secrets import redact

    return redact({k: cfg[k] for k in cfg if k != "hydra"}, resolve=True)  # trackers upload it


def log_optimized_metric(trainer: pl.Trainer, cfg: DictConfig, metrics: dict[str, float]) -> None:
    """Give TensorBoard's hparams view the run's real result: ``cfg.optimized_metric`` as ``hp_metric`` (the
    config turns Lightning's placeholder of -1 off, since the value is known only at the end)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    value = metrics.get(str(cfg.get("optimized_metric")))
    loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
    if value is None or not loggers:
        return
    for logger in loggers:
        logger.log_hyperparams(_hparams(cfg), metrics={"hp_metric": value})
        logger.finalize("success")  # flushed now: the writer may otherwise hold it until the process ends


def finished_line(summary: dict[str, Any], monitor: str | None) -> str:
    """``stopped: early_stopping/... after 3 epochs, 48 steps; best checkpoint <path> (val/acc_best 0.81)``."""
    metrics = summary.get("metrics", {})
    best_name = f"{monitor}_best" if monitor and f"{monitor}_best" in metrics else monitor
    best = f" ({best_name} {metrics[best_name]:.4g})" if best_name in metrics else ""
    return (
        f"stopped: {summary.get('stop_reason')} after {summary.get('epochs')} epochs, "
        f"{summary.get('global_step')} steps; best checkpoint {summary.get('best_checkpoint')}{best}"
    )


def stop_reason(trainer: pl.Trainer) -> str:
    """Why fitting ended: interrupted, fast_dev_run, early_stopping/<reason>, loss_threshold,
    max_time, max_steps or max_epochs."""
    from lightning.pytorch.callbacks import Timer

    if trainer.interrupted:
        return "interrupted"
    if trainer.fast_dev_run:
        return "fast_dev_run"
    early = trainer.early_stopping_callback
    reason = getattr(early, "stopping_reason", None)
    if early is not None and reason is not None and reason.name != "NOT_STOPPED":
        return f"early_stopping/{reason.name.lower()}"
    from finetune.trainer.callbacks import LossThresholdStopping

    if any(isinstance(c, LossThresholdStopping) and c.stopped_at_step is not None for c in trainer.callbacks):
        return "loss_threshold"
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is not None and timer.time_remaining() is not None and timer.time_remaining() <= 0:
        return "max_time"
    if 0 < trainer.max_steps <= trainer.global_step:
        return "max_steps"
    return "max_epochs"


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """The best checkpoint's path, or None (test the current weights) when no checkpoint was kept."""
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    if not path:
        log.warning("no best checkpoint (checkpointing off or fast_dev_run): testing the current weights")
        return None
    return path


def metric_value(metrics: dict[str, float], name: str | None, required: bool = False) -> float | None:
    """The value a sweeper optimizes. When it was not logged (e.g. the run stopped before its first validation),
    None and a warning; a ``UserError`` that lists the metrics that exist if ``required`` (a sweeper ranks by it).
    """
    from finetune.errors import UserError

    if not name or name in metrics:
        return metrics[name] if name else None
    why = "no validation ran" if not any(k.startswith("val/") for k in metrics) else "it was not logged"
    hint = "; validate sooner (trainer.val_check_interval) or train longer" if why == "no validation ran" else ""
    if required:
        raise UserError(f"optimized_metric '{name}' has no value: {why}{hint}; logged metrics: {sorted(metrics)}")
    log.warning("optimized_metric %s has no value (%s); the run is complete, nothing needs it", name, why)
    return None
