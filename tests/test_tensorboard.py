"""TensorBoard's hparams view shows the run's optimized metric, not Lightning's placeholder -1."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from finetune.run.summary import log_hyperparameters, log_optimized_metric
from tests.conftest import ROOT


def test_hparams_view_gets_the_optimized_metric(tmp_path: Path) -> None:
    node = OmegaConf.load(ROOT / "conf" / "logger" / "tensorboard.yaml")["tensorboard"]
    logger = instantiate(node, save_dir=str(tmp_path))
    cfg = OmegaConf.create({"seed": 3, "optimized_metric": "val/acc_best", "optimizer": {"lr": 0.01}})
    trainer = SimpleNamespace(loggers=[logger])
    log_hyperparameters(trainer, cfg)  # at the start: no placeholder metric is written
    logger.finalize("success")
    assert _scalars(tmp_path) == {}
    log_optimized_metric(trainer, cfg, {"val/acc_best": 0.875, "val/acc": 0.8})
    assert _scalars(tmp_path) == {"hp_metric": [0.875]}
    log_optimized_metric(trainer, cfg, {"val/acc": 0.8})  # no optimized value (e.g. a test-only run): nothing
    assert _scalars(tmp_path) == {"hp_metric": [0.875]}


def _scalars(folder: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
