"""Resuming: the same command continues an unfinished run in its own dir, from its newest good checkpoint.

A run's identity is a hash of its resolved config without the keys that do not change what is trained (paths,
loggers, progress display, ``resume`` itself). ``resume=auto`` (the default) looks for the newest run of the
same task with that identity that did not complete and has a checkpoint; ``resume=<run dir>`` names the run;
``resume=false`` always starts fresh. A multirun job resumes only in its own job dir (a requeued job).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from finetune import atomic
from finetune.errors import UserError
from finetune.run.lock import RunLock, holder
from finetune.run.outcome import COMPLETED, IDENTITY_FILE, INTERRUPTED, read_status, summary_damaged
from finetune.trainer.checkpoints import newest_readable

log = logging.getLogger(__name__)
# Keys that change where and how a run reports, not what it trains.
VOLATILE_KEYS = (
    "paths",
    "resume",
    "trust_run",
    "verbose",
    "validate",
    "logger",
    "tags",
    "callbacks.progress_bar",
    "trainer.enable_progress_bar",
)


def run_identity(cfg: DictConfig) -> str:
    """A hash of the resolved config without ``VOLATILE_KEYS`` (``identity_view``)."""
    text = json.dumps(identity_view(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity_view(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without ``VOLATILE_KEYS`` (paths replaced by placeholders first, since other keys
    interpolate them): what makes two runs the same run."""
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(plain):
        plain.pop("hydra", None)
        if "paths" in plain:
            plain.paths = {key: f"<paths.{key}>" for key in plain.paths}
        resolved = OmegaConf.to_container(plain, resolve=True)
    for dotted in VOLATILE_KEYS:
        *parents, leaf = dotted.split(".")
        node: Any = resolved
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return resolved


@dataclass
class ResumePlan:
    """What ``resume`` decided, before anything was written.

    Attributes:
        launch_dir: the dir Hydra made for this command.
        continued: the unfinished run this command continues in place (maybe ``launch_dir``), or None.
        checkpoint: the checkpoint to continue from (also set as ``cfg.ckpt_path``), or None.
        step: the checkpoint's global step (CSV rows from it on are logged again).
        identity: this command's run identity.
        status: the continued run's status when the plan was made (None: killed before it wrote one).
        claimed: ``claim_run`` holds the run dir: from then on a failure is recorded in it.
    """

    launch_dir: Path
    continued: Path | None
    checkpoint: Path | None
    step: int
    identity: str
    status: str | None = None
    claimed: bool = False

    @classmethod
    def fresh(cls, cfg: DictConfig) -> ResumePlan:
        """A new run in this command's own dir."""
        return cls(Path(cfg.paths.output_dir), None, None, 0, run_identity(cfg))

    @property
    def run_dir(self) -> Path:
        """Where the run trains."""
        return self.continued or self.launch_dir

    @property
    def moves(self) -> bool:
        """The run trains in another dir than the one Hydra made."""
        return self.run_dir.resolve() != self.launch_dir.resolve()


def plan_resume(cfg: DictConfig, multirun: bool = False, rank_zero: bool = True) -> ResumePlan:
    """Apply ``cfg.resume`` without writing anything: find the run to continue and its newest good checkpoint,
    and set ``cfg.ckpt_path`` to it, so the preflight checks the checkpoint the run will load.

    ``resume=<run dir>`` continues that run in place, a completed one too (with more epochs, say), once the
    preflight has passed. A run that a live process trains in is refused (``finetune.run.lock``). DDP's other
    ranks (``rank_zero`` False) resume in place, from the checkpoint rank 0 chose.

    Raises:
        UserError: the named run has no readable checkpoint, or a live process trains in it.
    """
    setting = cfg.get("resume", "auto")
    launch_dir = Path(cfg.paths.output_dir)
    identity = run_identity(cfg)
    if not rank_zero and not disabled(setting):
        setting = "auto"  # rank 0 already moved into the run to continue: resume in place
    run_dir = _run_to_resume(setting, identity, launch_dir, multirun or not rank_zero, check_lock=rank_zero)
    newest = newest_readable(run_dir / "checkpoints") if run_dir else None
    checkpoint, step = newest if newest else (None, 0)
    if run_dir is not None and checkpoint is None:
        if explicit(setting):
            raise UserError(
                f"resume={setting}: no checkpoint to resume from in {run_dir / 'checkpoints'}{_why(run_dir)}"
            )
        log.warning("unfinished run %s has no readable checkpoint: starting fresh", run_dir)
        run_dir = None
    if checkpoint is not None:
        with open_dict(cfg):
            cfg.ckpt_path = str(checkpoint)
    return ResumePlan(launch_dir, run_dir, checkpoint, step, identity, read_status(run_dir) if run_dir else None)


@contextmanager
def claim_run(cfg: DictConfig, plan: ResumePlan, rank_zero: bool = True) -> Iterator[None]:
    """After the preflight passed: lock the run dir, move into it (logs, CSV rows after the checkpoint, this
    command's identity), and hold the lock while the body trains. Rank 0 alone locks and writes.

    Raises:
        UserError: another live process took the lock since ``plan_resume`` looked.
    """
    lock = RunLock(plan.run_dir) if rank_zero else None
    try:
        if rank_zero and plan.continued is not None and (now := read_status(plan.run_dir)) != plan.status:
            raise UserError(f"{plan.run_dir} changed while this command was starting (now {now}); run it again")
        if plan.moves:
            if rank_zero:
                continue_in(plan.run_dir, plan.launch_dir)
            with open_dict(cfg):
                cfg.paths.output_dir = str(plan.run_dir)
        if rank_zero:
            if plan.continued is not None and plan.checkpoint is not None:
                trim_csv_logs(plan.run_dir, plan.step)
                log.info("resuming %s from %s (step %d)", plan.run_dir, plan.checkpoint.name, plan.step)
            _write_identity(plan.run_dir / IDENTITY_FILE, plan.identity, cfg.get("task_name"))
        plan.claimed = True
        yield
    finally:
        if lock is not None:
            lock.release()


def prepare_resume(cfg: DictConfig, multirun: bool = False, rank_zero: bool = True) -> Path | None:
    """``plan_resume`` and the writes of ``claim_run`` at once (no lock kept): the checkpoint resumed from."""
    plan = plan_resume(cfg, multirun, rank_zero)
    with claim_run(cfg, plan, rank_zero):
        return plan.checkpoint


def disabled(setting: Any) -> bool:
    return setting is None or setting is False or str(setting).lower() == "false"


def explicit(setting: Any) -> bool:
    return isinstance(setting, str) and setting.lower() not in ("auto", "false", "true", "")


def _run_to_resume(setting: Any, identity: str, output_dir: Path, multirun: bool, check_lock: bool) -> Path | None:
    if disabled(setting):
        return None
    if explicit(setting):
        run_dir = Path(setting).expanduser()
        if not (run_dir / "checkpoints").is_dir():
            raise UserError(f"resume={setting}: not a run dir with checkpoints/ (give a dir under outputs/, or false)")
        if multirun:
            raise UserError("resume=<run dir> names one run; a multirun resumes each job in its own dir")
        if check_lock and (who := holder(run_dir)):
            raise UserError(f"resume={setting}: {who} trains in that run now; wait for it to finish, or stop it")
        return run_dir.resolve()
    candidates = [output_dir] if multirun else [output_dir, *_sibling_runs(output_dir)]
    for run_dir in candidates:
        another = run_dir.resolve() != output_dir.resolve()
        if check_lock and another and same_identity(run_dir, identity) and (who := holder(run_dir)):
            raise UserError(
                f"an identical run is in progress in {run_dir} ({who}): wait for it to finish, "
                "or pass resume=false to start a separate run"
            )
        if unfinished(run_dir, identity):
            return run_dir
    return None


def _sibling_runs(output_dir: Path) -> list[Path]:
    """The other runs of the same task, newest first (dir names are time stamps)."""
    parent = output_dir.parent
    if not parent.is_dir():
        return []
    return sorted((d for d in parent.iterdir() if d.is_dir() and d != output_dir), reverse=True)


def same_identity(run_dir: Path, identity: str) -> bool:
    try:
        return json.loads((run_dir / IDENTITY_FILE).read_text())["identity"] == identity
    except (OSError, ValueError, KeyError, TypeError):
        return False


def unfinished(run_dir: Path, identity: str) -> bool:
    """Same identity, interrupted or killed (not completed, not failed: a failure would repeat), and at least one
    checkpoint. ``resume=<run dir>`` continues a failed run."""
    if not same_identity(run_dir, identity) or not any((run_dir / "checkpoints").glob("*.ckpt")):
        return False
    if summary_damaged(run_dir):  # it may have completed: never take it over unasked
        log.warning("%s has a damaged metrics.json: not resumed (pass resume=%s to continue it)", run_dir, run_dir)
        return False
    return read_status(run_dir) in (INTERRUPTED, None)


def _why(run_dir: Path) -> str:
    """Why a run dir holding checkpoints has none to resume from: weights only, kept once it completed."""
    if read_status(run_dir) == COMPLETED and any((run_dir / "checkpoints").glob("*.ckpt")):
        return (
            " (it completed and kept its best weights only: callbacks.last_checkpoint.keep_when_done=true keeps the "
            "state to train further); start a new run instead"
        )
    return ""


def trim_csv_logs(run_dir: Path, step: int) -> None:
    """Drop the CSV rows logged after the checkpoint (``step`` >= its global step): the resumed run logs those
    steps again, so each step keeps one row."""
    for metrics_file in run_dir.rglob("metrics.csv"):
        with metrics_file.open(newline="") as handle:
            reader = csv.DictReader(handle)
            fields, rows = reader.fieldnames or [], list(reader)
        kept = [row for row in rows if not row.get("step") or float(row["step"]) < step]
        if len(kept) == len(rows):
            continue
        with atomic.atomic_open(metrics_file, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)


def continue_in(run_dir: Path, fresh_dir: Path) -> None:
    """Write logs into ``run_dir`` and drop the empty dir Hydra made for this launch."""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in list(getattr(logger, "handlers", [])):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == fresh_dir:
                moved = logging.FileHandler(run_dir / Path(handler.baseFilename).name, mode="a")
                moved.setFormatter(handler.formatter)
                moved.setLevel(handler.level)
                logger.removeHandler(handler)
                handler.close()
                logger.addHandler(moved)
    # Only Hydra's saved config and the log file can be there yet; anything else is left alone.
    if fresh_dir.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in fresh_dir.iterdir()):
        shutil.rmtree(fresh_dir)


def _write_identity(path: Path, identity: str, task_name: str | None) -> None:
    atomic.write_json(path, {"identity": identity, "task_name": task_name})
