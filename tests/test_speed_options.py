"""Speed options: precision auto, SDPA attention, gradient checkpointing, torch.compile — wired and correct."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from finetune.train import train
from finetune.trainer import precision
from tests.helpers.tiny import tiny_model

TINY = {"label_names": ["neg", "pos"], "dropout": False}


def test_auto_precision_follows_the_hardware(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx2"})
    assert precision.auto_precision()[0] == "32"  # no bf16 instructions: fp32
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert precision.auto_precision() == ("bf16-mixed", "the CPU has AVX-512 bf16 instructions")
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512_bf16", "amx_tile", "amx_bf16"})
    assert precision.auto_precision() == ("bf16-mixed", "the CPU has AMX bf16 units")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "Tesla T4")
    assert precision.auto_precision() == ("32", "Tesla T4 has no bf16")
    assert precision.resolve_precision("16-mixed") == "16-mixed"  # anything but auto passes through


def test_precision_auto_runs_and_is_recorded(make_cfg) -> None:
    cfg = make_cfg("debug=limit", "trainer.max_epochs=1", "trainer.precision=auto")
    summary = train(cfg)
    expected = precision.auto_precision()[0]
    assert summary["precision"] == {"32": "32-true"}.get(expected, expected)
    assert json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["precision"] == summary["precision"]


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (4, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[2:, 8:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1, 0])}


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    model.train()
    model(**batch()).loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = tiny_model(**TINY)
    torch.manual_seed(0)
    checkpointed = tiny_model(**TINY, gradient_checkpointing=True)
    assert checkpointed.is_activation_checkpointing and not plain.is_activation_checkpointing
    expected, got = gradients(plain), gradients(checkpointed)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-5, msg=name)


def test_sdpa_and_eager_attention_agree() -> None:
    torch.manual_seed(0)
    sdpa = tiny_model(**TINY).eval()
    eager = tiny_model(**TINY, attn_implementation="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    inputs = {k: v for k, v in batch().items() if k != "labels"}
    with torch.no_grad():
        torch.testing.assert_close(sdpa(**inputs).logits, eager(**inputs).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_compiled_model_trains_and_keeps_parameter_names(make_cfg) -> None:
    cfg = make_cfg("debug=limit", "trainer.max_epochs=1", "model.compile=true")
    summary = train(cfg)
    assert summary["status"] == "completed" and summary["global_step"] == 4
    state = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in name for name in state)  # checkpoints load into an uncompiled model
    assert all(torch.isfinite(tensor).all() for tensor in state.values() if tensor.is_floating_point())


def test_pinned_memory_follows_the_device_unless_set(make_cfg) -> None:
    from hydra.utils import instantiate

    datamodule = instantiate(make_cfg().data)
    datamodule.setup()
    assert datamodule.val_dataloader().pin_memory is False  # no trainer on a GPU
    datamodule = instantiate(make_cfg("data.pin_memory=true").data)
    datamodule.setup()
    assert datamodule.val_dataloader().pin_memory is True


@pytest.mark.parametrize(("device", "precision", "multiple"), [("cpu", "bf16-mixed", None), ("cuda", "bf16-mixed", 8)])
def test_mixed_precision_pads_to_multiples_of_8_on_gpus_only(make_cfg, device, precision, multiple) -> None:
    """Tensor cores want multiples of 8; on a CPU the padding is only extra work (measured 4-7% per step)."""
    from types import SimpleNamespace

    from hydra.utils import instantiate

    datamodule = instantiate(make_cfg().data)
    datamodule.setup()
    strategy = SimpleNamespace(root_device=torch.device(device))
    datamodule.trainer = SimpleNamespace(precision=precision, strategy=strategy, global_rank=0, world_size=1)
    assert datamodule.val_dataloader().collate_fn.pad_to_multiple_of == multiple
