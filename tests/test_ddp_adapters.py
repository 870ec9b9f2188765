"""LoRA under DDP on 2 CPU processes with gradient checkpointing (peft #313: LoRA broke under DDP with
checkpointing): the same loss curve and adapter weights as one process, and an adapter-only checkpoint."""

from __future__ import annotations

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
