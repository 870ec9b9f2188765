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
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from finetune.checkpoints import read_checkpoint
from finetune.errors import UserError

log = logging.getLogger(__name__)
IDENTITY_FILE = "run_identity.json"
# Keys that change where and how a run reports, not what it trains.
VOLATILE_KEYS = (
    "paths",
    "resume",
    "validate",
    "logger",
    "tags",
    "callbacks.progress_bar",
    "trainer.enable_progress_bar",
)


def run_identity(cfg: DictConfig) -> str:
    """A hash of the resolved config without ``VOLATILE_KEYS`` (paths replaced by placeholders first, since
    other keys interpolate them)."""
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
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare_resume(cfg: DictConfig, multirun: bool = False, rank_zero: bool = True) -> Path | None:
    """Apply ``cfg.resume``: point ``paths.output_dir`` and ``ckpt_path`` at the run to continue (if any) and
    record the identity in the output dir. Returns the checkpoint resumed from, or None.

    DDP's other ranks (``rank_zero`` False) start in rank 0's run dir and only read: they resume in place,
    from the checkpoint rank 0 chose, and write nothing.
    """
    setting = cfg.get("resume", "auto")
    output_dir = Path(cfg.paths.output_dir)
    identity = run_identity(cfg)
    if not rank_zero and not _disabled(setting):
        setting = "auto"  # rank 0 already moved into the run to continue: resume in place
    run_dir = _run_to_resume(setting, identity, output_dir, multirun or not rank_zero)
    newest = _newest_readable(run_dir / "checkpoints") if run_dir else None
    checkpoint, step = newest if newest else (None, 0)
    if run_dir is not None and checkpoint is None:
        if _explicit(setting):
            raise UserError(f"resume={setting}: no readable checkpoint in {run_dir / 'checkpoints'}")
        log.warning("unfinished run %s has no readable checkpoint: starting fresh", run_dir)
        run_dir = None
    if run_dir is not None and checkpoint is not None:
        if run_dir.resolve() != output_dir.resolve():
            continue_in(run_dir, output_dir)
        with open_dict(cfg):
            cfg.paths.output_dir = str(run_dir)
            cfg.ckpt_path = str(checkpoint)
        if not rank_zero:
            return checkpoint
        trim_csv_logs(run_dir, step)
        log.info("resuming %s from %s (step %d)", run_dir, checkpoint.name, step)
        output_dir = run_dir
    if rank_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        _write_identity(output_dir / IDENTITY_FILE, identity, cfg.get("task_name"))
    return checkpoint


def _disabled(setting: Any) -> bool:
    return setting is None or setting is False or str(setting).lower() == "false"


def _explicit(setting: Any) -> bool:
    return isinstance(setting, str) and setting.lower() not in ("auto", "false", "true", "")


def _run_to_resume(setting: Any, identity: str, output_dir: Path, multirun: bool) -> Path | None:
    if _disabled(setting):
        return None
    if _explicit(setting):
        run_dir = Path(setting).expanduser()
        if not (run_dir / "checkpoints").is_dir():
            raise UserError(f"resume={setting}: not a run dir with checkpoints/ (give a dir under outputs/, or false)")
        if multirun:
            raise UserError("resume=<run dir> names one run; a multirun resumes each job in its own dir")
        return run_dir
    candidates = [output_dir] if multirun else [output_dir, *_sibling_runs(output_dir)]
    return next((d for d in candidates if _unfinished(d, identity)), None)


def _sibling_runs(output_dir: Path) -> list[Path]:
    """The other runs of the same task, newest first (dir names are time stamps)."""
    parent = output_dir.parent
    if not parent.is_dir():
        return []
    return sorted((d for d in parent.iterdir() if d.is_dir() and d != output_dir), reverse=True)


def _unfinished(run_dir: Path, identity: str) -> bool:
    """Same identity, interrupted or killed (not completed, not failed: a failure would repeat), and at least one
    checkpoint. ``resume=<run dir>`` continues a failed run."""
    try:
        recorded = json.loads((run_dir / IDENTITY_FILE).read_text())["identity"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if recorded != identity or not any((run_dir / "checkpoints").glob("*.ckpt")):
        return False
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status") == "interrupted"
    except (OSError, ValueError):
        return True  # killed before it wrote metrics.json


def newest_good_checkpoint(folder: Path) -> Path | None:
    """The readable checkpoint with the most optimizer steps; broken ones are reported and skipped."""
    newest = _newest_readable(folder)
    return newest[0] if newest else None


def _newest_readable(folder: Path) -> tuple[Path, int] | None:
    """``newest_good_checkpoint`` and its global step (read once)."""
    readable = []
    for path in folder.glob("*.ckpt"):
        try:
            step = int(read_checkpoint(path).get("global_step", -1))
        except UserError as error:
            log.warning("%s; skipped", error)
            continue
        readable.append((step, path.stat().st_mtime, path))
    if not readable:
        return None
    step, _, path = max(readable)
    return path, step


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
        partial = metrics_file.with_name(f".{metrics_file.name}.tmp")
        with partial.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)
        partial.replace(metrics_file)


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
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps({"identity": identity, "task_name": task_name}, indent=2) + "\n")
    partial.replace(path)
