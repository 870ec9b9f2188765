"""train(cfg) end to end on the tiny random model: what a run writes, precision, accumulation, optimizers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from finetune.train import train


def test_fast_dev_run(make_cfg) -> None:
    cfg = make_cfg("debug=fdr")
    summary = train(cfg)
    assert summary["status"] == "completed"
    assert summary["stop_reason"] == "fast_dev_run"
    assert math.isfinite(summary["metrics"]["test/loss"])
    assert json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text()) == summary


def test_logger_none_runs_without_the_learning_rate_monitor(make_cfg) -> None:
    cfg = make_cfg("logger=none", "debug=limit", "trainer.max_epochs=1")
    assert "lr_monitor" in cfg.callbacks  # the default callbacks keep it; the run leaves it out
    summary = train(cfg)
    assert summary["status"] == "completed" and summary["global_step"] == 4
    assert not (Path(cfg.paths.output_dir) / "csv").exists()


def test_fit_then_test_best_checkpoint(make_cfg) -> None:
    cfg = make_cfg("trainer.max_epochs=2", "callbacks.early_stopping.patience=5")
    summary = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert summary["stop_reason"] == "max_epochs"
    assert summary["epochs"] == 2 and summary["global_step"] == 2 * math.ceil(504 / 32)
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"last.ckpt"}
    assert Path(summary["best_checkpoint"]).parent == run / "checkpoints"
    metrics = summary["metrics"]
    for key in (
        "train/loss",
        "val/loss",
        "val/acc",
        "val/f1",
        "val/acc_best",
        "test/acc",
        "test/f1",
        "test/loss",
    ):
        assert math.isfinite(metrics[key]), key
    assert metrics["val/acc_best"] >= metrics["val/acc"]
    assert (run / "csv" / "metrics.csv").is_file()
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert checkpoint["hyper_parameters"]["label_names"] == ["negative", "positive"]
    assert checkpoint["state_dict"]["net.classifier.weight"].shape[0] == 2


def test_bf16_mixed_on_cpu(make_cfg) -> None:
    cfg = make_cfg("trainer.precision=bf16-mixed", "debug=limit", "trainer.max_epochs=1")
    summary = train(cfg)
    assert math.isfinite(summary["metrics"]["train/loss"])
    assert summary["global_step"] == 4
    assert summary["precision"] == "bf16-mixed"  # what the trainer ran, as metrics.json records it


def test_gradient_accumulation_steps_optimizer_every_n_batches(make_cfg) -> None:
    cfg = make_cfg("trainer.accumulate_grad_batches=3", "trainer.max_epochs=1", "scheduler=constant")
    summary = train(cfg)
    batches = math.ceil(504 / 32)
    assert summary["global_step"] == math.ceil(batches / 3)


def test_linear_schedule_warms_up_and_decays_per_step(make_cfg) -> None:
    import pandas as pd

    cfg = make_cfg(
        "trainer.max_epochs=1",
        "scheduler.warmup_ratio=0.25",
        "optimizer.lr=1e-3",
        "trainer.log_every_n_steps=1",
    )
    train(cfg)
    total = math.ceil(504 / 32)
    warmup = round(0.25 * total)
    frame = pd.read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv")
    logged = frame[["step", "lr-AdamW/decay"]].dropna()
    assert len(logged) == total  # logged before every optimizer step
    for step, lr in logged.itertuples(index=False):
        expected = 1e-3 * (step / warmup if step < warmup else (total - step) / (total - warmup))
        assert lr == pytest.approx(expected, rel=1e-5, abs=1e-12), step


def test_no_weight_decay_on_biases_and_norms(make_cfg) -> None:
    from finetune.optim.optimizers import param_groups
    from tests.helpers.tiny import tiny_model

    net = tiny_model(["a", "b"])
    decay, no_decay = param_groups(net, lr=1e-3)
    names = {id(p): n for n, p in net.named_parameters()}
    assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert all(p.ndim == 2 for p in decay["params"]) and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(net.parameters()))


def test_fused_adamw_is_used_on_cpu(make_cfg) -> None:
    from hydra.utils import instantiate

    from finetune.optim.optimizers import build_optimizer
    from tests.helpers.tiny import tiny_model

    cfg = make_cfg()
    net = tiny_model(["a", "b"])
    assert build_optimizer(instantiate(cfg.optimizer), net).defaults["fused"] is True
    assert build_optimizer(instantiate(cfg.optimizer), net, allow_fused=False).defaults["fused"] is False


def test_user_labels_flow_into_model_and_checkpoint(make_cfg, tmp_path: Path) -> None:
    from tests.conftest import write_csv

    rows = [{"review": f"review {i} " + "great " * (i % 3), "stars": ["low", "mid", "high"][i % 3]} for i in range(90)]
    path = write_csv(tmp_path / "reviews.csv", rows, ["review", "stars"])
    cfg = make_cfg(
        "data=csv", f"data.train_file={path}", "data.text_column=review", "data.label_column=stars", "debug=limit"
    )
    summary = train(cfg)
    assert summary["label_names"] == ["high", "low", "mid"]
    checkpoint = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["hyper_parameters"]["label_names"] == ["high", "low", "mid"]
    assert checkpoint["state_dict"]["net.classifier.weight"].shape[0] == 3
