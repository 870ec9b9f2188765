"""``python train.py validate=true``: check a composed config without training, print what was checked, exit 0.

``finetune.train.main`` runs the same checks at the start of every run, before any weights load. Each check
raises ``UserError`` at the first problem: one line saying what is wrong and what would be right. The cheap
checks live here, the ones that read data, tokenizer, model config and checkpoint in ``validate_inputs``.
Importing this module loads neither torch nor Lightning: Hydra builds ``RunDirCheck`` before a job starts.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from finetune.errors import UserError
from finetune.run.values import check_keys, check_ranges

# Every trainer.precision Lightning accepts (finetune.trainer.compat.lightning_precisions, not imported here: this
# module stays free of Lightning); tests/test_validate.py fails when Lightning's list changes.
PRECISIONS = (
    "64", "32", "16", "bf16", "64-true", "32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed",
    "transformer-engine", "transformer-engine-float16",
)  # fmt: skip
# The top-level keys of conf/train.yaml and its groups; any other (``+foo=1``) would be ignored, so it is refused.
TOP_LEVEL = frozenset({
    "task_name", "tags", "seed", "global_batch_size", "micro_batch_size", "train", "validate", "test",
    "ckpt_path", "resume", "rerun", "trust_run", "verbose", "param_groups", "adapter", "monitor", "monitor_mode",
    "optimized_metric", "task", "data", "model", "optimizer", "scheduler", "callbacks", "logger", "trainer", "paths",
})  # fmt: skip
# Names Lightning itself offers to callbacks' ``monitor`` besides what the module logs.
LIGHTNING_NAMES = frozenset({"epoch", "step"})


def validate_config(cfg: DictConfig) -> list[str]:
    """Check ``cfg`` as a run would use it (``preflight``) and return the summary lines."""
    return preflight(cfg)[0]


def preflight(cfg: DictConfig) -> tuple[list[str], Any]:
    """Check ``cfg`` as a run would use it: settings, output folders, data, model, checkpoint, metric names.

    Reads the raw data (or the tokenized cache), the tokenizer, the model's config and the checkpoint; tokenizes
    nothing and loads no model weights. Returns the summary lines and the data module it built and checked,
    which the run then trains on (one data module, one tokenizer load per run).

    Raises:
        UserError: at the first problem found.
    """
    from finetune.run.inputs import check_inputs
    from finetune.run.objects import check_objects
    from finetune.trainer.distributed import apply_global_batch

    _check_resolves(cfg)
    check_keys(cfg, TOP_LEVEL)
    lines = _check_settings(cfg)
    check_ranges(cfg)
    check_objects(cfg)  # the optimizer, callbacks and trainer build as the run will build them
    if "batch_size" in cfg.data:  # global_batch_size sets the per-device batch and the accumulation
        lines.append(apply_global_batch(cfg))  # before the data module is built with its batch size
    check_writable(Path(cfg.paths.output_dir), "the run's files", "paths.log_dir")
    if cfg.paths.get("cache_dir"):
        check_writable(Path(cfg.paths.cache_dir), "the tokenized-data cache", "paths.cache_dir")
    found = check_inputs(cfg)
    if found.fit_names is not None:
        lines.append(_check_metric_names(cfg, found.fit_names, found.all_names))
    return [*found.lines, *lines, f"run dir: {cfg.paths.output_dir}"], found.datamodule


def _check_resolves(cfg: DictConfig) -> None:
    """Every ``???`` is filled and every interpolation resolves (Hydra's own node aside)."""
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    try:
        OmegaConf.to_container(job, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as error:
        raise UserError(f"{error.full_key} is not set: give it on the command line ({error.full_key}=...)") from None
    except OmegaConfBaseException as error:
        where = getattr(error, "full_key", None) or "the config"
        raise UserError(f"{where} does not resolve: {str(error).splitlines()[0]}") from None


def _integer(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise UserError(f"{key} must be {what}, got {value!r}")
    return value


def _check_settings(cfg: DictConfig) -> list[str]:
    """Batch and sequence sizes, accumulation, precision, learning rate, seed and monitor mode."""
    data, trainer, optimizer = cfg.get("data") or {}, cfg.get("trainer") or {}, cfg.get("optimizer") or {}
    for key in ("batch_size", "eval_batch_size", "max_length"):
        if data.get(key) is not None:
            _integer(f"data.{key}", data[key], minimum=1)
    for key in ("global_batch_size", "micro_batch_size"):
        if cfg.get(key) is not None:
            _integer(key, cfg[key], minimum=1)
    accumulate = _integer("trainer.accumulate_grad_batches", trainer.get("accumulate_grad_batches", 1), minimum=1)
    for key in ("max_epochs", "max_steps"):
        if trainer.get(key) is not None:
            _integer(f"trainer.{key}", trainer[key], minimum=-1)
    precision = str(trainer.get("precision", "32"))
    if precision not in (*PRECISIONS, "auto"):
        choices = ["auto", *PRECISIONS]
        raise UserError(f"trainer.precision={precision} is not a Lightning precision; use one of {choices}")
    lr = optimizer.get("lr")
    if "lr" in optimizer and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf):
        raise UserError(f"optimizer.lr must be a positive number (e.g. optimizer.lr=5e-5), got {lr!r}")
    if cfg.get("seed") is not None:
        _integer("seed", cfg.seed, minimum=0)
    if cfg.get("monitor_mode") not in (None, "min", "max"):
        raise UserError(f"monitor_mode must be min or max, got {cfg.monitor_mode!r}")
    if cfg.get("adapter") and not (cfg.get("model") or {}).get("adapter"):  # a model without adapters ignores it
        raise UserError(f"adapters apply to Hugging Face models; {cfg.model.get('_target_')} takes none (use "
                        "adapter=none, or a Hugging Face model such as model=minilm)")  # fmt: skip
    batch = f"batch {data.batch_size} x {accumulate} accumulated, " if "batch_size" in data else ""
    target = str(optimizer.get("_target_", "?")).rsplit(".", 1)[-1]
    return [f"loop: {target} lr {lr}, {batch}precision {precision}, max_epochs {trainer.get('max_epochs')}"]


def _check_metric_names(cfg: DictConfig, fit_names: set[str], all_names: set[str]) -> str:
    """``monitor`` (and every callback's or scheduler's ``monitor``) names a metric logged during fitting;
    ``optimized_metric`` one logged by fitting or testing."""
    watched = {"monitor": cfg.get("monitor")}
    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, DictConfig) and node.get("monitor") is not None:
            watched[f"callbacks.{name}.monitor"] = node.monitor
    if isinstance(cfg.get("scheduler"), DictConfig) and cfg.scheduler.get("monitor") is not None:
        watched["scheduler.monitor"] = cfg.scheduler.monitor
    for key, name in watched.items():
        if name is not None and name not in fit_names | LIGHTNING_NAMES:
            known = sorted(n for n in fit_names if n.startswith("val/"))
            raise UserError(f"{key}={name} is never logged while fitting; the validation metrics are {known}")
    optimized = cfg.get("optimized_metric")
    if optimized is not None and optimized not in all_names:
        known = sorted(n for n in all_names if not n.startswith("train/"))
        raise UserError(f"optimized_metric={optimized} is never logged; the run logs {known}")
    return f"metrics: monitor {cfg.get('monitor')} ({cfg.get('monitor_mode')}), optimized_metric {optimized}"


def unwritable_reason(path: Path) -> str | None:
    """Why nothing can be written at ``path`` (its nearest existing folder decides), or None if it can."""
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def check_writable(path: Path, what: str, key: str) -> None:
    """Raise ``UserError`` naming ``key`` when ``path`` cannot be written."""
    reason = unwritable_reason(path)
    if reason:
        raise UserError(f"cannot write {what} under {path}: {reason}; set {key} to a folder you can write")


class RunDirCheck(Callback):
    """Before Hydra writes anything: a plain ``task_name``, a run or sweep dir that can be written and holds no
    earlier run this command would overwrite, and a sweeper storage URL that opens. Each mistake is one line and
    exit status 2 (Hydra would print an exception from here as a traceback)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from finetune.run.existing import refuse_existing_run
        from finetune.trainer.distributed import is_rank_zero

        self._refuse(lambda: check_task_name(config.get("task_name")))
        self._refuse(lambda: check_creatable(config.hydra.run.dir))
        # Before Hydra saves its config files into the dir: an earlier run there stays as it was. DDP's other
        # ranks are started in rank 0's run dir on purpose (finetune.trainer.distributed).
        if is_rank_zero():
            self._refuse(lambda: refuse_existing_run(config, Path(str(config.hydra.run.dir))))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._refuse(lambda: check_task_name(config.get("task_name")))
        self._refuse(lambda: check_creatable(config.hydra.sweep.dir))
        self._refuse(lambda: check_storage(config.hydra.sweeper.get("storage")))
        self._refuse(lambda: check_launcher(config.hydra.launcher))

    @staticmethod
    def _refuse(check: Any) -> None:
        try:
            check()
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None


def check_creatable(folder: Any) -> None:
    """The run (or sweep) dir can be made."""
    reason = unwritable_reason(Path(str(folder)))
    if reason:
        raise UserError(f"cannot create the run dir {folder}: {reason}; set paths.log_dir to a folder you can write")


def check_task_name(name: Any) -> None:
    """``task_name`` names one folder under ``paths.log_dir``: no path separators, not empty, not ``..``."""
    text = str(name or "")
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        suggestion = text.strip("/\\").replace("/", "_").replace("\\", "_") or "train"
        raise UserError(f"task_name={text!r} must be a plain folder name (no / or \\), e.g. task_name={suggestion}")


def check_storage(storage: Any) -> None:
    """An Optuna storage URL parses, and a SQLite file's folder exists and can be written."""
    if storage is None or not isinstance(storage, str):
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(storage)
    except ArgumentError:
        raise UserError(
            f"hydra.sweeper.storage={storage} is not a database URL; use e.g. sqlite:///outputs/optuna.db"
        ) from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(url.database).absolute().parent
        if not folder.is_dir():
            raise UserError(f"hydra.sweeper.storage={storage}: the folder {folder} does not exist; create it first")
        check_writable(folder, "the Optuna study", "hydra.sweeper.storage")


def check_launcher(launcher: Any) -> None:
    """A SLURM launcher needs SLURM's commands on this machine (submitit's own error is a traceback from inside
    the sweep, after the sweep dir exists)."""
    target = str(launcher.get("_target_", "")) if launcher is not None else ""
    missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
    if target.endswith("SlurmLauncher") and missing:
        raise UserError(
            f"hydra/launcher=slurm needs SLURM ({' and '.join(missing)} not on this machine's PATH): run it on the "
            "cluster's login "
            "node, or leave the launcher out to run the jobs here"
        )
