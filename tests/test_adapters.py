"""``adapter=...``: adapters (peft) on every task's network, the head trained and saved with them, parameter groups
of the trainable weights only, adapter-only checkpoints with the base's hash, and the preflight's checks. No
trainer is started here except in the tests marked slow."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import pytest
import torch

from finetune.adapters.attach import attach_adapter, head_modules, is_adapted, parameter_counts
from finetune.adapters.state import RECORD, base_digest, fill_frozen, keep_trainable, trainable_keys
from finetune.errors import UserError
from finetune.optim.param_groups import param_groups
from finetune.run.preflight import validate_config
from finetune.train import build_module, train
from tests.helpers.tiny import tiny_model

TASKS = {"SEQ_CLS": "AutoModelForSequenceClassification", "TOKEN_CLS": "AutoModelForTokenClassification"}


def lora(**options):
    from peft import LoraConfig

    return partial(LoraConfig, **{"r": 4, "lora_alpha": 8, "target_modules": "all-linear", **options})


@pytest.mark.parametrize("task_type", sorted(TASKS))
def test_only_the_adapter_and_the_head_train(task_type: str) -> None:
    net = tiny_model(["a", "b", "c"], TASKS[task_type])
    assert head_modules(net) == ["classifier"]
    adapted = attach_adapter(net, lora(), task_type)
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or ".modules_to_save." in n for n in trainable)
    assert {n for n in trainable if "classifier" in n} == {
        "base_model.model.classifier.modules_to_save.default.weight",
        "base_model.model.classifier.modules_to_save.default.bias",
    }
    counts = parameter_counts(adapted)
    assert 0 < counts["trainable"] < 0.05 * counts["total"]  # the tiny model: mostly its frozen embeddings


def test_parameter_groups_see_only_trainable_weights_and_find_the_head() -> None:
    adapted = attach_adapter(tiny_model(["a", "b"]), lora(), "SEQ_CLS")
    groups = {g["name"]: g for g in param_groups(adapted, lr=1e-3, head_lr=1e-2, layer_decay=0.5)}
    grouped = [p for g in groups.values() for p in g["params"]]
    assert len(grouped) == sum(p.requires_grad for p in adapted.parameters())
    head = adapted.base_model.model.classifier.modules_to_save["default"]
    assert [id(p) for p in groups["head/decay"]["params"]] == [id(head.weight)]
    assert groups["head/no_decay"]["lr"] == 1e-2
    assert groups["depth_01/decay"]["lr"] == pytest.approx(1e-3 * 0.5**2)  # layer 0 of 2: two below the top


def test_target_modules_that_match_nothing_are_one_line() -> None:
    with pytest.raises(UserError, match=r"adapter\.target_modules"):
        attach_adapter(tiny_model(["a", "b"]), lora(target_modules=["no_such_layer"]), "SEQ_CLS")


def tiny_module(seed: int, **peft_options):
    """The tiny classifier with LoRA, its base drawn from ``seed``."""
    from finetune.models import SequenceClassifier

    torch.manual_seed(seed)
    return SequenceClassifier(
        tiny_model(["a", "b"], dropout=False), optimizer=None, adapter=lora(**peft_options), adapter_task_type="SEQ_CLS"
    )


def test_adapter_checkpoint_holds_no_frozen_weight_and_reloads_the_same_predictions() -> None:
    trained = tiny_module(0).eval()
    with torch.no_grad():  # a head and adapter that differ from any fresh draw
        for param in trained.net.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.1)
    checkpoint = {"state_dict": trained.state_dict()}
    keep_trainable(checkpoint, trained.net, trainable_keys(trained.net), base_digest(trained.net))
    saved = [k for k in checkpoint["state_dict"] if k.startswith("net.")]
    assert saved and all("lora_" in k or ".modules_to_save." in k for k in saved)
    assert checkpoint[RECORD]["peft_type"] == "LORA" and checkpoint[RECORD]["r"] == 4

    reloaded = tiny_module(0).eval()  # the same base (same seed), a fresh random adapter and head
    fill_frozen(checkpoint, reloaded, None, "ckpt")
    reloaded.load_state_dict(checkpoint["state_dict"])  # strict: every key is there
    batch = {"input_ids": torch.randint(5, 1000, (3, 9)), "attention_mask": torch.ones(3, 9, dtype=torch.long)}
    with torch.no_grad():
        torch.testing.assert_close(reloaded(batch), trained(batch), atol=0, rtol=0)
        assert not torch.equal(tiny_module(0).eval()(batch), trained(batch))  # the head and adapter were restored


def test_another_base_or_another_kind_of_checkpoint_is_refused() -> None:
    module = tiny_module(0)
    checkpoint = {"state_dict": module.state_dict()}
    keep_trainable(checkpoint, module.net, trainable_keys(module.net), base_digest(module.net))
    with pytest.raises(UserError, match="another base model"):
        fill_frozen(dict(checkpoint), tiny_module(1), None, "ckpt")
    with pytest.raises(UserError, match="r=4 there, 8 here"):
        fill_frozen(dict(checkpoint), tiny_module(0, r=8), None, "ckpt")
    from finetune.models import SequenceClassifier

    full = SequenceClassifier(tiny_model(["a", "b"]), optimizer=None)
    with pytest.raises(UserError, match="holds LORA adapters only"):
        fill_frozen(dict(checkpoint), full, None, "ckpt")
    with pytest.raises(UserError, match="holds a full fine-tune"):
        fill_frozen({"state_dict": full.state_dict()}, module, None, "ckpt")


@pytest.mark.parametrize("option", ["lora", "dora", "ia3", "qlora"])
def test_every_adapter_option_passes_the_preflight_with_its_head(make_cfg, option: str) -> None:
    model = [] if option == "qlora" else ["model=tiny_random"]  # qlora quantizes pretrained weights
    lines = validate_config(make_cfg(f"adapter={option}", *model, fast=False))
    line = next(line for line in lines if line.startswith("adapter: "))
    assert line.endswith("head trained and saved: classifier"), line
    assert ("IA3" if option == "ia3" else "LORA") in line


def test_adapter_mistakes_fail_the_preflight_in_one_line(make_cfg) -> None:
    with pytest.raises(UserError, match=r"adapter\.target_modules"):
        validate_config(make_cfg("adapter=lora", "adapter.target_modules=[nothing]"))
    with pytest.raises(UserError, match="random_init=true has none"):
        validate_config(make_cfg("adapter=qlora"))  # FAST is the tiny random model
    with pytest.raises(UserError, match="apply to Hugging Face models"):
        validate_config(make_cfg("experiment=linear_regression", "adapter=lora", fast=False))


def test_module_built_from_the_config_is_adapted_and_its_base_rebuilds(make_cfg) -> None:
    from hydra.utils import instantiate

    cfg = make_cfg("adapter=lora")
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    first, second = build_module(cfg, datamodule).build_net(), build_module(cfg, datamodule).build_net()
    assert is_adapted(first)
    assert base_digest(first) == base_digest(second)  # model.net.init_seed: the same random base


# ---- real runs (a trainer each)
@pytest.mark.slow
@pytest.mark.parametrize("task", ["classification", "ner"])
def test_lora_trains_every_task_and_checkpoints_a_small_fraction(make_cfg, task: str) -> None:
    data = ["experiment=ner", "data.max_train_samples=256", "data.max_eval_samples=64"] if task == "ner" else []
    common = [*data, "trainer.max_epochs=2", "optimizer.lr=3e-3"]
    lora_summary = train(make_cfg(*common, "adapter=lora", "adapter.r=4"))
    full_summary = train(make_cfg(*common))
    for summary in (lora_summary, full_summary):
        assert summary["status"] == "completed" and math.isfinite(summary["metrics"]["test/loss"])
    checkpoint = torch.load(lora_summary["best_checkpoint"], weights_only=True)
    weights = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    assert RECORD in checkpoint and all("lora_" in k or ".modules_to_save." in k for k in weights)
    # peft starts every lora_B at zero: the adapters moved, so the gradients reached them
    assert all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)
    costs, full_costs = lora_summary["costs"], full_summary["costs"]
    # peft's total counts the adapters and the head's frozen original besides the base
    assert costs["trainable_params"] < 0.05 * costs["total_params"]
    assert full_costs["total_params"] < costs["total_params"] < 1.01 * full_costs["total_params"]
    assert full_costs["trainable_params"] == full_costs["total_params"]
    # Adapter-only: the state to resume from (weights and optimizer state) is a small fraction of the full run's.
    lasts = [Path(s["best_checkpoint"]).with_name("last.ckpt").stat().st_size for s in (lora_summary, full_summary)]
    assert lasts[0] < 0.05 * lasts[1], lasts
    best = Path(lora_summary["best_checkpoint"]).stat().st_size
    assert costs["checkpoint_mb"] == pytest.approx(best / 2**20, abs=1e-3)
    assert costs["step_time_s"] > 0 and costs["peak_memory_mb"] > 0
    recorded = json.loads((Path(lora_summary["best_checkpoint"]).parents[1] / "metrics.json").read_text())
    assert recorded["costs"] == costs


@pytest.mark.slow
def test_qlora_runs_a_few_steps_on_the_cpu(make_cfg) -> None:
    """The packaged MiniLM loaded in 4 bits (bitsandbytes' CPU path), LoRA on top, the head in full precision."""
    pytest.importorskip("bitsandbytes", reason="adapter=qlora needs bitsandbytes")
    overrides = ["model=minilm", "adapter=qlora", "trainer.max_steps=4", "data.max_train_samples=64", "logger=csv"]
    summary = train(make_cfg(*overrides, fast=False))
    assert summary["status"] == "completed" and summary["global_step"] == 4
    assert math.isfinite(summary["metrics"]["test/loss"])
    assert RECORD in torch.load(summary["best_checkpoint"], weights_only=True)
    assert summary["costs"]["trainable_params"] < 0.02 * summary["costs"]["total_params"]


SMALL = ["data.max_train_samples=64", "data.max_eval_samples=32", "logger=csv", "++callbacks.progress_bar=null"]
TASK_RUNS = {  # each task's tiny network (the image one is its own, a ViT built from a config)
    "sequence": ["model=tiny_random", *SMALL],
    "token": ["experiment=ner", "model=tiny_random", *SMALL],
    "image": ["experiment=digits", *SMALL],
}


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ["lora", "dora", "ia3"])
@pytest.mark.parametrize("task", sorted(TASK_RUNS))
def test_each_adapter_trains_every_task(make_cfg, adapter: str, task: str) -> None:
    """Two steps of each adapter on each task's tiny network: the head is trained and checkpointed with the
    adapter, nothing frozen is saved, and the adapter's own weights moved (qlora: ``test_qlora_...`` below)."""
    cfg = make_cfg(*TASK_RUNS[task], f"adapter={adapter}", "trainer.max_steps=2", "trainer.precision=32", fast=False)
    summary = train(cfg)
    assert summary["status"] == "completed" and math.isfinite(summary["metrics"]["test/loss"])
    last = torch.load(Path(summary["best_checkpoint"]).with_name("last.ckpt"), weights_only=True)
    weights = {k: v for k, v in last["state_dict"].items() if k.startswith("net.")}
    assert last[RECORD]["peft_type"] == ("IA3" if adapter == "ia3" else "LORA")
    head = [k for k in weights if ".modules_to_save." in k]
    assert head and all(".modules_to_save." in k or adapter_weight(k) for k in weights), sorted(weights)[:5]
    # peft starts LoRA's B at zero and IA3's vectors at one: a moved value means the gradients reached them
    start = 1.0 if adapter == "ia3" else 0.0
    moved = [k for k, v in weights.items() if ("ia3_l" in k or "lora_B" in k) and not torch.all(v == start)]
    assert moved, sorted(weights)[:5]
    assert summary["costs"]["trainable_params"] < summary["costs"]["total_params"]


def adapter_weight(key: str) -> bool:
    """A weight peft added for an adapter (LoRA's A and B, DoRA's magnitude, IA3's scaling vectors)."""
    return any(part in key for part in ("lora_", "ia3_l"))
