"""What a sequence task optimizes and measures: classification (cross-entropy) or regression (MSE).

The module picks by the network's ``problem_type`` (``regression`` when the data's labels are scores, with one
output); ``model.loss`` can override the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryF1Score, MulticlassAccuracy, MulticlassF1Score, MulticlassMatthewsCorrCoef
from torchmetrics.regression import MeanSquaredError, PearsonCorrCoef, SpearmanCorrCoef

from finetune.errors import UserError

LOSSES = ("auto", "cross_entropy", "mse")
CLASSIFICATION_METRICS = ("acc", "f1", "f1_pos", "mcc", "top5")
REGRESSION_METRICS = ("pearson", "spearman", "mse")
LOWER_IS_BETTER = ("mse",)


def _metric(name: str, num_classes: int) -> Metric:
    """One torchmetrics object by its short name (all sync correctly under DDP)."""
    if name == "acc":
        return MulticlassAccuracy(num_classes=num_classes, average="micro")
    if name == "f1":  # macro F1: every class counts the same
        return MulticlassF1Score(num_classes=num_classes, average="macro")
    if name == "f1_pos":  # F1 of class 1, GLUE's F1 for MRPC and QQP
        return PositiveF1()
    if name == "mcc":  # Matthews correlation, GLUE's metric for CoLA
        return MulticlassMatthewsCorrCoef(num_classes=num_classes)
    if name == "top5":  # the true class among the five highest scores (ImageNet's second number)
        return MulticlassAccuracy(num_classes=num_classes, top_k=5, average="micro")
    return {"pearson": PearsonCorrCoef, "spearman": SpearmanCorrCoef, "mse": MeanSquaredError}[name]()


class PositiveF1(BinaryF1Score):
    """F1 of class 1 from class scores (N, 2), which the other metrics take as they are."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(preds.argmax(-1) if preds.ndim == 2 else preds, target)


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
    metric_names: tuple[str, ...] = ("acc", "f1")
    main_metric: str = "acc"

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
        """Class scores (N, C), which the class metrics arg-max themselves and top-5 ranks, or the scores
        themselves for regression."""
        return logits.float().squeeze(-1) if self.regression else logits.float()

    def metrics(self, prefix: str) -> MetricCollection:
        """The task's metrics, named ``<prefix><metric>`` (``val/acc``, ``test/mcc``, ...)."""
        return MetricCollection({n: _metric(n, self.num_outputs) for n in self.metric_names}, prefix=prefix)


def objective_for(
    problem_type: str | None,
    num_outputs: int,
    loss: str,
    label_smoothing: float,
    metrics: list[str] | None = None,
    main_metric: str | None = None,
) -> Objective:
    """The objective of a network, checking ``model.loss``, ``model.label_smoothing`` and the data's metrics.

    Args:
        problem_type: the network config's ``problem_type`` (``regression`` or a classification type).
        num_outputs: classes, or 1 for regression.
        loss: ``auto``, ``cross_entropy`` or ``mse``.
        label_smoothing: for cross-entropy.
        metrics: metric names (``data.metrics``); None: acc and f1, or pearson, spearman and mse.
        main_metric: the metric tracked as ``val/<name>_best`` (``data.main_metric``); None: the first.
    """
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
    allowed = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    names = tuple(metrics) if metrics else (REGRESSION_METRICS if regression else ("acc", "f1"))
    wrong = [m for m in names if m not in allowed]
    if wrong:
        kind = "scores (regression)" if regression else "classes"
        raise UserError(f"data.metrics {wrong} do not apply to {kind}; choose from {list(allowed)}")
    if "f1_pos" in names and num_outputs != 2:
        raise UserError(f"metric f1_pos needs 2 classes, the data has {num_outputs}")
    if "top5" in names and num_outputs <= 5:
        raise UserError(f"metric top5 needs more than 5 classes, the data has {num_outputs}")
    main = main_metric or names[0]
    if main not in names:
        raise UserError(f"data.main_metric '{main}' is not one of data.metrics {list(names)}")
    return Objective(regression, num_outputs, name, label_smoothing, names, main)
