"""The optimization worked example: ``python train.py experiment=linear_regression`` fits y = 2 − 3x."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetune.data.synthetic import LinearRegressionDataModule
from finetune.models.linear import LinearRegression, linear_net, mse
from finetune.train import train

TRUE_THETA = (2.0, -3.0)
OPTIMIZERS = ["gd", "momentum", "rmsprop", "adam"]
# No progress bar or model table: these runs take about a second each and their output is noise here.
QUIET = ["++callbacks.progress_bar=null", "++trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def test_closed_form_gradients_match_autograd() -> None:
    data = LinearRegressionDataModule(n_train=50, seed=3)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    x, y = batch["x"].double(), batch["y"].double()
    module = LinearRegression(linear_net().double(), optimizer=torch.optim.SGD)
    with torch.no_grad():  # a random θ, not the zero start, so that neither term vanishes by construction
        module.net.bias.copy_(torch.randn(1, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
        module.net.weight.copy_(torch.randn(1, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64))

    loss = mse(module(x), y)
    loss.backward()
    d_theta0, d_theta1 = module.closed_form_gradients(x, y)

    residual = module(x).detach() - y
    assert torch.allclose(d_theta0, 2 * residual.mean(), atol=1e-12)
    torch.testing.assert_close(d_theta0, module.net.bias.grad.reshape(()), atol=1e-6, rtol=0)
    torch.testing.assert_close(d_theta1, module.net.weight.grad.reshape(()), atol=1e-6, rtol=0)


def test_data_is_full_batch_seeded_and_setup_is_idempotent() -> None:
    data = LinearRegressionDataModule()
    data.setup()
    splits = data.splits
    data.setup()
    assert data.splits is splits
    assert data.model_kwargs == {}
    for loader, n in ((data.train_dataloader(), 256), (data.val_dataloader(), 64), (data.test_dataloader(), 64)):
        batches = list(loader)
        assert len(batches) == 1  # one batch per epoch: one optimizer step per epoch
        assert batches[0]["x"].shape == (n, 1) and batches[0]["y"].shape == (n,)
    again = LinearRegressionDataModule()
    again.setup()
    assert torch.equal(again.splits["train"]["y"], splits["train"]["y"])
    x, y = splits["train"]["x"].squeeze(1), splits["train"]["y"]
    assert x.min() >= -1.0 and x.max() <= 1.0
    residual_std = (y - (TRUE_THETA[0] + TRUE_THETA[1] * x)).std()
    assert 0.08 < residual_std < 0.12  # noise = 0.1


def test_linear_net_starts_at_zero() -> None:
    net = linear_net()
    assert net.weight.shape == (1, 1) and net.bias.shape == (1,)
    assert not net.weight.any() and not net.bias.any()


def test_command_line_optimizer_wins_over_the_experiment(make_cfg) -> None:
    cfg = make_cfg("experiment=linear_regression", "optimizer=adam", fast=False)
    assert cfg.optimizer._target_ == "torch.optim.Adam"
    assert cfg.optimizer.lr == 0.1  # the experiment's shared lr still applies to the chosen optimizer
    cfg = make_cfg("experiment=linear_regression", "optimizer=momentum", "optimizer.lr=0.05", fast=False)
    assert cfg.optimizer.momentum == 0.9 and cfg.optimizer.lr == 0.05
    assert cfg.hydra.runtime.choices.optimizer == "momentum"


def test_experiment_fits_the_line(make_cfg) -> None:
    cfg = make_cfg("experiment=linear_regression", *QUIET, fast=False)
    assert cfg.trainer.gradient_clip_val is None and cfg.monitor == "val/loss"
    summary = train(cfg)

    assert summary["stop_reason"] == "loss_threshold", summary
    metrics = summary["metrics"]
    assert metrics["train/loss"] < cfg.callbacks.loss_threshold.threshold
    assert metrics["theta/0"] == pytest.approx(TRUE_THETA[0], abs=0.05)
    assert metrics["theta/1"] == pytest.approx(TRUE_THETA[1], abs=0.05)
    # The last checkpoint holds θ after the final step (the metrics hold the θ that gave the final loss).
    state = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert float(state["net.bias"]) == pytest.approx(TRUE_THETA[0], abs=0.05)
    assert float(state["net.weight"]) == pytest.approx(TRUE_THETA[1], abs=0.05)
    assert {"val/loss", "val/loss_best", "test/loss"} <= metrics.keys()
    assert summary["best_checkpoint"] and summary["global_step"] == summary["epochs"]  # full batch: step = epoch
    assert (Path(cfg.paths.output_dir) / "metrics.json").is_file()


# The README's table (python train.py -m experiment=linear_regression optimizer=gd,momentum,rmsprop,adam): steps to
# the threshold, θ0, θ1 and test MSE as printed there. The experiment pins fp32, so they hold on any CPU.
README_TABLE = {
    "gd": (71, 2.012, -2.977, 0.0094),
    "momentum": (79, 2.013, -2.982, 0.0094),
    "rmsprop": (19, 2.012, -2.983, 0.0094),
    "adam": (83, 1.995, -3.014, 0.0095),
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_reaches_the_loss_threshold(optimizer: str, make_cfg, record_property) -> None:
    cfg = make_cfg("experiment=linear_regression", f"optimizer={optimizer}", *QUIET, fast=False)
    summary = train(cfg)
    steps = summary["global_step"]
    record_property("steps_to_threshold", steps)
    print(f"{optimizer}: lr={cfg.optimizer.lr} steps={steps}")
    assert summary["stop_reason"] == "loss_threshold", summary
    assert steps <= 100  # the shared lr of the experiment suits all four (see its comment)
    metrics = summary["metrics"]
    shown = (steps, round(metrics["theta/0"], 3), round(metrics["theta/1"], 3), round(metrics["test/loss"], 4))
    assert shown == README_TABLE[optimizer], shown  # the README's row, digit for digit
