"""LoRA under DDP on 2 CPU processes with gradient checkpointing (peft #313: LoRA broke under DDP with
checkpointing) and under FSDP: the same loss curve and adapter weights as one process, adapter-only checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from finetune.adapters.state import RECORD
from finetune.trainer.checkpoints import read_checkpoint
from tests.test_ddp import cli, runs, step_losses

pytestmark = pytest.mark.xdist_group("ddp")  # one DDP test at a time under pytest -n

LORA = ["adapter=lora", "adapter.r=4", "adapter.lora_dropout=0.0", "model.net.gradient_checkpointing=true"]


@pytest.mark.slow
def test_ddp_lora_with_gradient_checkpointing_matches_one_process(tmp_path: Path) -> None:
    cli(tmp_path, *LORA, "task_name=one", "data.batch_size=16")
    cli(tmp_path, *LORA, "task_name=ddp", "trainer=ddp_cpu", "global_batch_size=16", "micro_batch_size=8")
    (one,), (ddp,) = runs(tmp_path, "one"), runs(tmp_path, "ddp")
    losses = step_losses(one)
    assert len(losses) == 16 and losses[-1] < losses[0]  # it learned, not just ran
    assert step_losses(ddp) == pytest.approx(losses, abs=1e-5)  # the tolerance of the full fine-tune's test
    weights = torch.load(one / "checkpoints" / "last.ckpt", weights_only=True)
    ddp_weights = read_checkpoint(ddp / "checkpoints" / "last.ckpt")
    assert RECORD in weights and RECORD in ddp_weights
    trained = [name for name in weights["state_dict"] if "lora_" in name or ".modules_to_save." in name]
    assert trained and set(trained) == {name for name in ddp_weights["state_dict"] if name.startswith("net.")}
    assert any(weights["state_dict"][name].abs().sum() > 0 for name in trained if "lora_B" in name)
    for name in trained:
        torch.testing.assert_close(ddp_weights["state_dict"][name], weights["state_dict"][name], atol=1e-5, rtol=0)

    # FSDP (full sharding, its own activation checkpointing) with frozen and trainable parameters in one unit: the
    # same losses, and testing loads the adapter-only checkpoint (FSDP loads weights itself, non-strictly).
    fsdp = ["trainer=fsdp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy.cpu=true"]
    cli(
        tmp_path,
        *LORA[:3],
        *fsdp,
        "trainer.precision=32",
        "task_name=fsdp",
        "global_batch_size=16",
        "micro_batch_size=8",
    )
    (sharded,) = runs(tmp_path, "fsdp")
    assert step_losses(sharded) == pytest.approx(losses, abs=1e-5)
    summary = json.loads((sharded / "metrics.json").read_text())
    assert summary["status"] == "completed"
    expected = json.loads((one / "metrics.json").read_text())["metrics"]
    assert summary["metrics"]["test/loss"] == pytest.approx(expected["test/loss"], abs=1e-5)
