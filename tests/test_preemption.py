"""Real processes, really killed: SIGKILL mid-epoch then the same command again ends exactly where an
uninterrupted run ends; SIGTERM checkpoints, marks the run interrupted, requeues a SLURM job and resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

# 8 batches per epoch, 2 epochs; a resumable checkpoint every 3 steps; deterministic kernels.
COMMAND = [
    "model=tiny_random",
    "logger=csv",
    "optimizer.lr=1e-3",
    "data.batch_size=16",
    "data.max_train_samples=128",
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "callbacks.last_checkpoint.every_n_train_steps=3",
    "++callbacks.progress_bar=null",
    "+callbacks.signal_at_step._target_=tests.helpers.signals.SignalAtStep",
    "task_name=resume",
]


def train(
    log_dir: Path, signal_at_step: int | None = None, signal: str = "SIGKILL", extra: tuple[str, ...] = (), **env: str
):
    """``python train.py COMMAND extra`` with the test callback armed at ``signal_at_step``."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT), **env}
    if signal_at_step is not None:
        environment |= {"FINETUNE_TEST_SIGNAL_AT_STEP": str(signal_at_step), "FINETUNE_TEST_SIGNAL": signal}
    command = [sys.executable, "train.py", *COMMAND, *extra, f"paths.log_dir={log_dir}"]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)


def only_run(log_dir: Path) -> Path:
    runs = list((log_dir / "resume" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), ("adapter=lora", "adapter.r=4")], ids=["full", "lora"])
def test_sigkill_mid_epoch_then_rerun_ends_like_the_uninterrupted_run(tmp_path: Path, extra: tuple[str, ...]) -> None:
    """The full fine-tune, and a LoRA run whose checkpoints hold the adapter and head only (its base rebuilt
    from the seed and checked by hash on resume): the same steps, metrics and trained weights."""
    reference = train(tmp_path / "reference", extra=extra)
    assert reference.returncode == 0, reference.stderr[-3000:]

    killed = train(tmp_path / "killed", signal_at_step=11, extra=extra)  # epoch 2, batch 3; last checkpoint: step 9
    assert killed.returncode == -9
    resumed = train(tmp_path / "killed", extra=extra)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected, run = only_run(tmp_path / "reference"), only_run(tmp_path / "killed")
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from"].endswith("last.ckpt")
    assert summary["global_step"] == 16
    reference_metrics = json.loads((expected / "metrics.json").read_text())["metrics"]
    assert summary["metrics"].keys() == reference_metrics.keys()
    for name, value in reference_metrics.items():
        assert summary["metrics"][name] == pytest.approx(value, abs=1e-6), name
    assert "from last.ckpt (step 9)" in resumed.stdout + resumed.stderr  # steps 10 and 11 were redone
    weights, reference_weights = final_weights(run), final_weights(expected)
    assert weights.keys() == reference_weights.keys()
    if extra:  # adapter-only: no frozen base weight in the checkpoint
        assert all("lora_" in k or ".modules_to_save." in k for k in weights if k.startswith("net."))
    for name, tensor in reference_weights.items():
        torch.testing.assert_close(weights[name], tensor, atol=1e-6, rtol=0, msg=name)
    # One CSV row per training step: the rows logged between the checkpoint and the kill were dropped.
    import pandas as pd

    steps = pd.read_csv(run / "csv" / "metrics.csv").dropna(subset=["train/loss_step"])["step"].tolist()
    assert steps == list(range(16))


@pytest.mark.slow
def test_sigterm_checkpoints_marks_interrupted_requeues_and_resumes(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "scontrol_calls.txt"
    scontrol = fake_bin / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "PATH": f"{fake_bin}:{os.environ['PATH']}"}

    stopped = train(tmp_path / "logs", signal_at_step=5, signal="SIGTERM", **slurm)
    assert stopped.returncode == 128 + 15, stopped.stderr[-3000:]
    assert "interrupted: stopped by SIGTERM" in stopped.stderr
    run = only_run(tmp_path / "logs")
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "interrupted" and summary["stop_reason"] == "signal/SIGTERM"
    assert summary["global_step"] == 6  # the batch running when the signal came was finished
    assert sorted(p.name for p in (run / "checkpoints").glob("*.ckpt")) == ["interrupted.ckpt", "last.ckpt"]  # step 3
    assert not any(name.startswith("test/") for name in summary["metrics"])  # no time spent testing
    assert calls.read_text().split() == ["requeue", "4242"]

    resumed = train(tmp_path / "logs")  # what the requeued job runs: the same command
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert only_run(tmp_path / "logs") == run
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from"].endswith("interrupted.ckpt")
    assert summary["global_step"] == 16 and "test/acc" in summary["metrics"]
