"""Shared fixtures: compose the real config from conf/ and point every output at a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):  # workers share the cores: each (and what it starts) gets its share
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))

# Small and fast: the tiny random model, CSV logging, 2 epochs at most, no progress bar.
FAST = [
    "model=tiny_random",
    "logger=csv",
    "trainer.max_epochs=2",
    "trainer.enable_model_summary=false",
    "++callbacks.progress_bar=null",
]


def compose_train_cfg(overrides: list[str], run_dir: Path, cache_dir: Path) -> DictConfig:
    """The config ``python train.py <overrides>`` would get, with its run dir at ``run_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"paths.log_dir={run_dir.parent}", f"paths.cache_dir={cache_dir}", *overrides],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.override_dirname = ",".join(overrides)
    HydraConfig.instance().set_config(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    return cfg


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenized-data cache for the whole session, as sweep jobs share one."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def make_cfg(tmp_path: Path, cache_dir: Path) -> Callable[..., DictConfig]:
    """``make_cfg(*overrides)``: a fast config (tiny model, CSV logger) with a fresh run dir under ``tmp_path``."""

    runs = iter(range(1000))

    def make(*overrides: str, fast: bool = True) -> DictConfig:
        run_dir = tmp_path / f"run{next(runs)}"  # each config its own dir: checkpoints never mix
        return compose_train_cfg([*(FAST if fast else []), *overrides], run_dir, cache_dir)

    yield make
    GlobalHydra.instance().clear()


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    """A small CSV file for data tests."""
    import csv

    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
