"""Every option of every config group composes, and every ``_target_`` accepts the keys its node gives it."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import get_method
from omegaconf import DictConfig, ListConfig, OmegaConf

from tests.conftest import CONF_DIR, ROOT

GROUPS = [
    "data",
    "model",
    "optimizer",
    "scheduler",
    "adapter",
    "callbacks",
    "logger",
    "trainer",
    "experiment",
    "debug",
    "hparams_search",
]
REQUIRED_GROUPS = [*GROUPS, "paths", "hydra", "hparams_search", "local"]
# Keys some options leave for the user on the command line.
REQUIRED_FILLS = {
    "data": {
        **{fmt: f"data.train_file=x.{fmt}" for fmt in ("csv", "json", "jsonl", "parquet")},
        "conll": "data.train_file=x.txt",
        "images": "data.dataset=my_images/",
    }
}


def options(group: str) -> list[str]:
    """Selectable options of a group, nested ones as ``glue/cola`` (files starting with _ are shared bases)."""
    folder = CONF_DIR / group
    return sorted(
        str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml") if not p.name.startswith("_")
    )


ALL = [(g, o) for g in GROUPS for o in options(g)]


def test_every_group_exists() -> None:
    assert all((CONF_DIR / g).is_dir() for g in REQUIRED_GROUPS)
    assert (CONF_DIR / "train.yaml").is_file()


def test_every_yaml_starts_with_the_command_that_uses_it() -> None:
    for path in CONF_DIR.rglob("*.yaml"):
        lines = [line for line in path.read_text().splitlines() if not line.startswith("# @package")]
        commands = ("train.py", "eval.py", "predict.py", "export.py")  # the four entry points beside conf/
        assert lines and lines[0].startswith("# ") and any(c in lines[0] for c in commands), path


def _targets(node, path: str = ""):
    """Yield (dotted path, node) for every node with a _target_."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node:
            yield from _targets(node[key], f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            yield from _targets(item, f"{path}[{i}]")


@pytest.mark.parametrize(("group", "option"), ALL, ids=[f"{g}={o}" for g, o in ALL])
def test_option_composes_and_targets_bind(group: str, option: str, make_cfg) -> None:
    overrides = [f"{group}={option}"]
    fill = REQUIRED_FILLS.get(group, {}).get(option)
    if fill:
        overrides.append(fill)
    cfg = make_cfg(*overrides, fast=False)
    job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.resolve(job_cfg)  # every interpolation resolves
    found = list(_targets(job_cfg))
    for where, node in found:
        target = get_method(node._target_)
        kwargs = {k: v for k, v in node.items() if not str(k).startswith("_")}
        try:
            inspect.signature(target).bind_partial(**kwargs)
        except TypeError as error:
            pytest.fail(f"{group}={option}: {where} ({node._target_}) does not accept its keys: {error}")
    assert found


def _run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(("group", "bad"), [("optimizer", "adamx"), ("scheduler", "cosinee"), ("model", "bert")])
def test_unknown_option_names_group_and_choices(group: str, bad: str) -> None:
    result = _run(f"{group}={bad}", "--cfg", "job")
    assert result.returncode != 0
    assert f"Could not find '{group}/{bad}'" in result.stderr
    for choice in options(group):
        assert choice in result.stderr


def test_cfg_and_help_do_not_import_torch() -> None:
    probe = (
        "import atexit, sys, runpy\n"
        "atexit.register(lambda: print('HEAVY', sorted(m for m in ('torch', 'transformers', 'lightning') "
        "if m in sys.modules)))\n"
        "sys.argv = ['train.py'] + sys.argv[1:]\n"
        "runpy.run_path('train.py', run_name='__main__')\n"
    )
    for flag in (["--cfg", "job"], ["--help"]):
        result = subprocess.run(
            [sys.executable, "-c", probe, *flag], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "HEAVY []" in result.stdout, result.stdout[-500:]


def test_help_lists_the_groups() -> None:
    result = _run("--help")
    for group in ("optimizer", "scheduler", "model", "data"):
        assert f"\n  {group} " in result.stdout  # the project's help page (tests/test_cli.py checks every option)
    assert Path(ROOT / "train.py").is_file()


def test_console_script_composes_the_same_config() -> None:
    script = Path(sys.executable).with_name("finetune-train")
    result = subprocess.run([str(script), "--cfg", "job"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "_target_: finetune.data.TextClassificationDataModule" in result.stdout


def test_the_known_top_level_keys_are_those_of_train_yaml() -> None:
    """``+foo=1`` is refused against TOP_LEVEL: it must list exactly conf/train.yaml's keys and groups."""
    from omegaconf import OmegaConf

    from finetune.run.preflight import TOP_LEVEL
    from tests.conftest import CONF_DIR

    primary = OmegaConf.load(CONF_DIR / "train.yaml")
    groups = {next(iter(d)) for d in primary.defaults if not isinstance(d, str)} - {"hydra"}
    groups = {g.removeprefix("optional ") for g in groups} - {"experiment", "hparams_search", "local", "debug"}
    assert ({k for k in primary if k != "defaults"} | groups) == TOP_LEVEL
