"""What a sequence task optimizes and measures: classification (cross-entropy) or regression (MSE).

The module picks by the network's ``problem_type`` (``regression`` when the data's labels are scores, with one
output); ``model.loss`` can override the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from torchmetrics.regression import MeanSquaredError, PearsonCorrCoef, SpearmanCorrCoef

from finetune.errors import UserError

LOSSES = ("auto", "cross_entropy", "mse")


@dataclass(frozen=True)
class Objective:
    """Loss, predictions and metrics for one kind of task.

    Args:
        regression: one real-valued output per example instead of class logits.
        num_outputs: classes (or 1 for regression).
        loss_name: ``cross_entropy`` or ``mse``; on a classification task ``mse`` is the Brier score
            (squared error between the softmax and the one-hot target).
        label_smoothing: for cross-entropy only.
    """

    regression: bool
    num_outputs: int
    loss_name: str
    label_smoothing: float = 0.0

    @property
    def main_metric(self) -> str:
        """The metric whose best value is tracked as ``val/<name>_best``."""
        return "pearson" if self.regression else "acc"

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss in float32, whatever the autocast dtype of the logits."""
        logits = logits.float()
        if self.regression:
            return F.mse_loss(logits.squeeze(-1), labels.float())
        if self.loss_name == "mse":
            target = F.one_hot(labels, self.num_outputs).float()
            return F.mse_loss(logits.softmax(-1), target)
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """Class ids, or the scores themselves for regression (not arg-maxed)."""
        return logits.float().squeeze(-1) if self.regression else logits.argmax(-1)

    def metrics(self, prefix: str) -> MetricCollection:
        """Accuracy and macro F1, or MSE, Pearson and Spearman, named ``<prefix><metric>``."""
        if self.regression:
            parts = {"mse": MeanSquaredError(), "pearson": PearsonCorrCoef(), "spearman": SpearmanCorrCoef()}
        else:
            parts = {
                "acc": MulticlassAccuracy(num_classes=self.num_outputs, average="micro"),
                "f1": MulticlassF1Score(num_classes=self.num_outputs, average="macro"),
            }
        return MetricCollection(parts, prefix=prefix)


def objective_for(problem_type: str | None, num_outputs: int, loss: str, label_smoothing: float) -> Objective:
    """The objective of a network, checking ``model.loss`` and ``model.label_smoothing`` against it."""
    if loss not in LOSSES:
        raise UserError(f"model.loss must be one of {list(LOSSES)}, got '{loss}'")
    if not 0.0 <= label_smoothing < 1.0:
        raise UserError(f"model.label_smoothing must be in [0, 1), got {label_smoothing}")
    regression = problem_type == "regression"
    if regression and loss == "cross_entropy":
        raise UserError("model.loss=cross_entropy needs class labels, but the labels are scores (regression)")
    if regression and label_smoothing:
        raise UserError("model.label_smoothing applies to classification; the labels are scores (regression)")
    name = "mse" if regression else ("cross_entropy" if loss == "auto" else loss)
    return Objective(regression, num_outputs, name, label_smoothing)
