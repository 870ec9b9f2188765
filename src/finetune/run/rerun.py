"""``python train.py rerun=<run dir>``: the same config again in a new run dir, then the two runs' metrics side by side.

The config is the one the run saved (``.hydra/config.yaml``), not a new composition of its overrides: a changed
default in ``conf/`` does not change a rerun. Plain ``key=value`` overrides given with ``rerun`` apply on top
(``seed=2`` reruns with another seed); a group choice (``optimizer=sgd``) is refused, since the saved config no
longer knows its groups. Every run dir also holds ``rerun.sh``, the same command. Torch-free.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from finetune import atomic
from finetune.errors import UserError
from finetune.run.outcome import COMPLETED, read_summary
from finetune.run.saved import read_saved_config

log = logging.getLogger(__name__)

SCRIPT = "rerun.sh"
COMPARISON_FILE = "rerun.json"
OWN_KEYS = ("rerun", "trust_run", "verbose", "hydra.")  # read by Hydra or by this module, not part of the rerun config


def saved_config(run_dir: Path, trust_run: bool = False) -> DictConfig:
    """The config a run saved, read as data (``finetune.run.saved``), or a ``UserError`` saying what the folder
    is instead."""
    if not run_dir.is_dir():
        raise UserError(f"rerun={run_dir} is not a folder; give the dir of a run (outputs/<task>/runs/<time>)")
    return read_saved_config(run_dir, f"rerun={run_dir}", trust_run)


def rerun_config(cfg: DictConfig, overrides: list[str], choices: dict[str, Any]) -> DictConfig:
    """The saved config of ``cfg.rerun``, its ``paths.output_dir`` this command's dir, with ``overrides`` (this
    command's ``key=value`` pairs) applied, and ``resume=false``: a rerun never continues the run it repeats.

    Raises:
        UserError: a group choice among ``overrides``, or a folder that holds no run.
    """
    original = Path(str(cfg.rerun)).expanduser().resolve()
    rerun = saved_config(original, bool(cfg.get("trust_run")))
    settings = parse_overrides(overrides, OWN_KEYS)
    groups = [o.input_line for o in settings if o.key_or_group in choices]
    if groups:
        raise UserError(
            f"rerun= repeats a saved config, which has no config groups: {groups[0]} cannot apply; pass key=value "
            f"settings only (e.g. seed=2), or run python train.py with the groups you want"
        )
    apply_overrides(rerun, settings)
    with open_dict(rerun):
        rerun.paths.output_dir = cfg.paths.output_dir  # this command's dir, not the original's
        rerun.resume = False
        rerun.rerun = str(original)
    return rerun


def parse_overrides(overrides: list[str], skip: tuple[str, ...]) -> list[Any]:
    """Hydra's parsed form of the ``overrides`` whose key does not start with one of ``skip``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    kept = [o for o in overrides if not o.lstrip("+~").startswith(skip)]
    return OverridesParser.create().parse_overrides(kept)


def apply_overrides(cfg: DictConfig, settings: list[Any]) -> None:
    """Set each parsed ``key=value`` override in ``cfg`` (``~key`` sets it to null)."""
    with open_dict(cfg):
        for override in settings:
            OmegaConf.update(cfg, override.key_or_group, None if override.is_delete() else override.value())


def save_rerun_config(cfg: DictConfig) -> None:
    """Write the config actually run over Hydra's copy of the command's one, so a rerun of the rerun works."""
    saved = Path(cfg.paths.output_dir) / ".hydra" / "config.yaml"
    if saved.parent.is_dir():
        atomic.write_text(saved, OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])))


def write_script(run_dir: Path) -> None:
    """``rerun.sh``: from the dir the run started in, the same interpreter and entry point, ``rerun=<run dir>``."""
    entry = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else Path("train.py")
    command = [sys.executable, str(entry), f"rerun={run_dir.resolve()}"]
    text = (
        "#!/bin/sh\n"
        f"# Rerun this run's config in a new run dir and compare the metrics: sh {run_dir / SCRIPT} [key=value ...]\n"
        f'cd {shlex.quote(str(Path.cwd()))} && exec {shlex.join(command)} "$@"\n'
    )
    atomic.write_text(run_dir / SCRIPT, text)
    (run_dir / SCRIPT).chmod(0o755)


def compare(original: Path, rerun: Path) -> list[str]:
    """Lines of a table: each test and validation metric of both runs and their difference; written to
    ``<rerun>/rerun.json``. A run that did not complete is named, not compared."""
    before, after = read_summary(original) or {}, read_summary(rerun) or {}
    if before.get("status") != COMPLETED:
        return [f"rerun: the original run {original} is {before.get('status') or 'unfinished'}: nothing to compare"]
    old, new = before.get("metrics") or {}, after.get("metrics") or {}
    names = sorted(n for n in set(old) | set(new) if n.startswith(("test", "val/")))
    rows = {n: {"original": old.get(n), "rerun": new.get(n)} for n in names}
    for row in rows.values():
        both = row["original"] is not None and row["rerun"] is not None
        row["difference"] = row["rerun"] - row["original"] if both else None
    atomic.write_json(rerun / COMPARISON_FILE, {"original": str(original), "rerun": str(rerun), "metrics": rows})
    width = max((len(n) for n in names), default=6)
    lines = [f"rerun of {original} (this run: {rerun})", f"{'metric':<{width}}  {'original':>10}  {'rerun':>10}  diff"]
    for name, row in rows.items():
        cells = [_cell(row[k]) for k in ("original", "rerun", "difference")]
        lines.append(f"{name:<{width}}  {cells[0]:>10}  {cells[1]:>10}  {cells[2]}")
    return lines


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}" if abs(value) >= 1e-4 or value == 0 else f"{value:.2e}"
