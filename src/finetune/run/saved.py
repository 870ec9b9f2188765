"""A run dir is data, never code: reading the config and overrides a run saved, for ``rerun=``, ``eval.py``,
``predict.py`` and ``export.py``.

A run dir can come from anyone (a colleague's share, a downloaded archive). Its ``.hydra/config.yaml`` names the
classes these commands instantiate, so a crafted one could name ``builtins.open`` or ``shutil.copyfile`` (Hydra's
own blocklist lets both through) or switch ``trust_remote_code`` on. Every ``_target_`` in a saved config must be
one of this project's classes or one of the library classes its configs name; anything else, and remote code, is
refused in one line unless the command says ``trust_run=true``. Torch-free.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from finetune.errors import UserError

CONFIG_FILE, OVERRIDES_FILE = Path(".hydra") / "config.yaml", Path(".hydra") / "overrides.yaml"

# What the project's configs instantiate: its own code, and these library classes (conf/**/*.yaml).
ALLOWED_TARGETS = re.compile(
    r"finetune\.[\w.]+"
    r"|torch\.optim\.(lr_scheduler\.)?\w+"
    r"|lightning\.pytorch\.(Trainer|(callbacks|loggers|strategies|profilers)\.\w+)"
    r"|transformers\.(optimization\.Adafactor|BitsAndBytesConfig)"
    r"|peft\.\w+Config"
)
REMOTE_CODE = "trust_remote_code"
RUN_SECTIONS = ("data", "model", "trainer", "paths")  # what every config train.py saves holds


def read_saved_config(run_dir: Path, where: str, trust_run: bool = False) -> DictConfig:
    """The config ``run_dir`` saved, checked as data (``check_saved_targets``).

    Raises:
        UserError: the file is missing or damaged, or it names code outside the allow-list.
    """
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{where} holds no {CONFIG_FILE}: it is not the dir of a run of train.py")
    config = _yaml(path, where)
    if not isinstance(config, dict):
        raise UserError(f"{where}: {CONFIG_FILE} is damaged (not a mapping of settings); the run cannot be used")
    missing = [key for key in RUN_SECTIONS if not isinstance(config.get(key), dict)]
    if missing:  # cut short, or not written by train.py
        raise UserError(f"{where}: {CONFIG_FILE} is damaged (no {missing[0]} section); the run cannot be used")
    for node in (config, config["model"]):  # saved before the group was renamed adapter (2026-12-03)
        if "peft" in node and "adapter" not in node:
            node["adapter"] = node.pop("peft")
    checked = OmegaConf.create(config)
    check_saved_targets(checked, where, trust_run)
    return checked


def read_saved_overrides(run_dir: Path, where: str) -> list[str]:
    """The command-line overrides ``run_dir`` saved (``.hydra/overrides.yaml``), or a ``UserError`` if damaged."""
    path = run_dir / OVERRIDES_FILE
    overrides = _yaml(path, where) if path.is_file() else []
    if not isinstance(overrides, list | type(None)) or not all(isinstance(o, str) for o in overrides or []):
        raise UserError(f"{where}: {OVERRIDES_FILE} is damaged (not a list of overrides); the run cannot be used")
    return list(overrides or [])


RUN_RECORDS = (str(CONFIG_FILE), str(OVERRIDES_FILE), "metrics.json", "provenance.json", "run_identity.json")


def check_no_links_out(run_dir: Path, where: str, also: tuple[Path, ...] = ()) -> None:
    """Refuse a run whose records (``RUN_RECORDS`` and ``also``) are links leading out of it: what a command reads
    from a run (into a model card, say) must be the run's own files, not e.g. a key file linked in.

    Raises:
        UserError: naming the link and where it leads.
    """
    root = run_dir.resolve()
    for path in (*(run_dir / name for name in RUN_RECORDS), *also):
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise UserError(f"{where}: {path.relative_to(run_dir)} is a link to {path.resolve()}, outside the run; "
                            "a run's files must be its own (copy the file in, if it is meant to be there)")  # fmt: skip


def check_saved_targets(config: DictConfig, where: str, trust_run: bool = False) -> None:
    """Refuse a saved config that would run code other than the project's: a ``_target_`` outside
    ``ALLOWED_TARGETS`` or ``trust_remote_code`` switched on, unless ``trust_run``.

    Raises:
        UserError: naming the setting and the way out.
    """
    if trust_run:
        return
    for key, value in _settings(OmegaConf.to_container(config, resolve=False)):
        if key.endswith("_target_") and isinstance(value, str) and not _allowed(_resolved(config, key, value)):
            raise UserError(
                f"{where}: {key}={value} is not one of this project's classes, so the run dir is not loaded (a run "
                "dir is data; its config could run any code); if you made or trust this run, pass trust_run=true"
            )
        if key.endswith(REMOTE_CODE) and value is True:
            raise UserError(
                f"{where}: {key}=true would run code shipped with its model; if you trust the run and the model's "
                "authors, pass trust_run=true"
            )


def _allowed(target: str) -> bool:
    return ALLOWED_TARGETS.fullmatch(target) is not None


def _resolved(config: DictConfig, key: str, value: str) -> str:
    """An interpolated target (``${task.module}``) as it resolves: the setting it points at is checked too."""
    if "${" not in value:
        return value
    try:
        return str(OmegaConf.select(config, key, throw_on_resolution_failure=True))
    except Exception:  # an interpolation that does not resolve outside the run's own Hydra job
        return value


def _settings(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted key, value) of a plain container, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, dict | list):
            yield from _settings(value, f"{name}.")
        else:
            yield name, value


def _yaml(path: Path, where: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        line = getattr(getattr(error, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise UserError(
            f"{where}: {path.relative_to(path.parent.parent)} is damaged{at}; the run cannot be used"
        ) from None
