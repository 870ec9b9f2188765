"""The task contract (``finetune.models.contract``): one evaluation hook, ``connect`` with the data, and the
checkpoint signature every module saves and the preflight compares."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from finetune.errors import UserError
from finetune.models import SequenceClassifier
from finetune.models.contract import StepOutput
from finetune.run.preflight import validate_config
from finetune.train import train

CONSTANT = 7.0


class ConstantEvaluation(SequenceClassifier):
    """Evaluates with a loss of ``CONSTANT``: proves validation and test go through ``evaluation_step`` alone."""

    def connect(self, datamodule) -> None:
        super().connect(datamodule)
        self.connected_to = datamodule

    def evaluation_step(self, batch) -> StepOutput:
        out = self.step(batch)
        return StepOutput(torch.full_like(out.loss, CONSTANT), out.predictions, out.targets, out.size)


def test_evaluation_step_is_the_one_hook_of_validation_and_test(make_cfg) -> None:
    cfg = make_cfg("debug=limit", "trainer.max_epochs=1")
    with open_dict(cfg):
        cfg.model._target_ = f"{__name__}.ConstantEvaluation"
    summary = train(cfg)
    metrics = summary["metrics"]
    assert metrics["val/loss"] == pytest.approx(CONSTANT) and metrics["test/loss"] == pytest.approx(CONSTANT)
    assert metrics["train/loss_epoch"] < 1.0  # training kept the task's own step (cross-entropy of 2 classes)
    assert 0.0 <= metrics["test/acc"] <= 1.0  # the base still logs the task's metrics from the hook's predictions


def test_connect_hands_the_module_its_data_and_processor(make_cfg) -> None:
    from hydra.utils import instantiate

    from finetune.train import build_module

    cfg = make_cfg()
    with open_dict(cfg):
        cfg.model._target_ = f"{__name__}.ConstantEvaluation"
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    module = build_module(cfg, datamodule)
    module.connect(datamodule)
    assert module.connected_to is datamodule and module.processor is datamodule.load_tokenizer()


def test_checkpoints_carry_a_signature_that_the_preflight_compares(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("debug=limit", "trainer.max_epochs=1")
    summary = train(cfg)
    checkpoint = torch.load(summary["best_checkpoint"], weights_only=True, map_location="cpu")
    expected = {"task": "SequenceClassifier", "model_type": "bert", "label_names": ["negative", "positive"]}
    assert checkpoint["signature"] == expected
    # The same checkpoint for another task (token classification on WNUT-16): refused on the task and the labels.
    with pytest.raises(UserError, match=r"does not fit this config and data: task SequenceClassifier there, "):
        validate_config(make_cfg("experiment=ner", f"ckpt_path={summary['best_checkpoint']}"))


def test_model_dtype_builds_the_network_in_it_and_a_wrong_one_is_one_line(make_cfg) -> None:
    from hydra.utils import instantiate

    from finetune.train import build_module

    cfg = make_cfg("model.net.dtype=bfloat16")
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    module = build_module(cfg, datamodule)
    assert module.net is None  # built by Lightning in configure_model, inside the strategy's contexts
    module.configure_model()
    assert {p.dtype for p in module.net.parameters()} == {torch.bfloat16}
    with pytest.raises(UserError, match=r"^model.net.dtype=float8 is not a weights dtype; use one of \['float32'"):
        validate_config(make_cfg("model.net.dtype=float8"))
