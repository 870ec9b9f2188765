"""Faults inside a run: a non-finite loss stops with the step named (or skips the batch); same seed, same result."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetune.models import SequenceClassifier
from finetune.models.non_finite import NonFiniteLossError
from finetune.train import train


def nan_losses(monkeypatch, is_nan) -> None:
    """Training batch number n (from 1) gets a NaN loss when ``is_nan(n)``."""
    real_step = SequenceClassifier.step
    calls = {"train": 0}

    def step(self, batch):
        out = real_step(self, batch)
        if self.training:
            calls["train"] += 1
            if is_nan(calls["train"]):
                out.loss = out.loss * torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(SequenceClassifier, "step", step)


@pytest.fixture
def nan_at_third_batch(monkeypatch):
    nan_losses(monkeypatch, lambda n: n == 3)


def test_non_finite_loss_stops_naming_the_step(make_cfg, nan_at_third_batch) -> None:
    cfg = make_cfg("debug=limit", "trainer.max_epochs=1")
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss \(nan\) at step 2; last good checkpoint"):
        train(cfg)


def test_non_finite_loss_can_skip_the_batch(make_cfg, nan_at_third_batch, caplog) -> None:
    cfg = make_cfg("debug=limit", "trainer.max_epochs=1", "model.non_finite_loss=skip")
    with caplog.at_level("WARNING"):
        summary = train(cfg)
    assert any("non-finite loss nan at step 2: batch skipped" in r.getMessage() for r in caplog.records)
    assert torch.isfinite(torch.tensor(summary["metrics"]["train/loss"]))
    state = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_same_seed_same_metrics_on_cpu(make_cfg) -> None:
    runs = [train(make_cfg("debug=limit", "trainer.deterministic=true", "seed=7")) for _ in range(2)]
    assert runs[0]["metrics"] == runs[1]["metrics"]
    other = train(make_cfg("debug=limit", "trainer.deterministic=true", "seed=8"))
    assert other["metrics"] != runs[0]["metrics"]


@pytest.fixture
def nan_from_third_batch(monkeypatch):
    """Every training batch from the third on has a NaN loss: a diverged run."""
    nan_losses(monkeypatch, lambda n: n >= 3)


def test_skipping_stops_when_most_recent_batches_were_skipped(make_cfg, nan_from_third_batch) -> None:
    """skip mode drops a stray batch, but a run that skips most of them has diverged: it stops, not completes."""
    cfg = make_cfg("debug=limit", "trainer.max_epochs=3", "model.non_finite_loss=skip", "model.non_finite_window=4")
    with pytest.raises(NonFiniteLossError, match=r"^2 of the last 4 batches had a non-finite loss .*training diverged"):
        train(cfg)


def test_the_named_checkpoint_holds_finite_weights(tmp_path: Path) -> None:
    """A checkpoint saved after the weights overflowed is passed over for an older, finite one."""
    import os

    from finetune.models.non_finite import last_finite_checkpoint

    good, bad = tmp_path / "epoch_000.ckpt", tmp_path / "last.ckpt"
    torch.save({"state_dict": {"net.w": torch.ones(3)}}, good)
    torch.save({"state_dict": {"net.w": torch.tensor([1.0, float("inf"), 0.0])}}, bad)
    os.utime(good, (1, 1))  # the infinite one is the newest
    trainer = type("T", (), {"checkpoint_callbacks": [type("C", (), {"dirpath": str(tmp_path)})()]})()
    assert last_finite_checkpoint(trainer) == str(good)
    bad.unlink()
    good.unlink()
    assert last_finite_checkpoint(trainer) == "none yet"
