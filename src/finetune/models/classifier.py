"""Sequence classification and regression: a Hugging Face classifier on the shared loop (``FineTuneModule``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from finetune.models.base import FineTuneModule
from finetune.models.contract import StepOutput
from finetune.models.net_builder import NetBuilder, built_for
from finetune.models.objectives import LOWER_IS_BETTER, objective_for

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from transformers import PreTrainedModel


class SequenceClassifier(FineTuneModule):
    """Fine-tunes an injected ``PreTrainedModel`` on sequence classification or regression.

    Logs, besides the loop's names (``FineTuneModule``): for classification ``train/acc``, ``val/acc``,
    ``val/f1`` and ``val/acc_best``; for regression (``problem_type: regression``, one output, MSE)
    ``val/mse``, ``val/pearson``, ``val/spearman`` and ``val/pearson_best``; the same under each test set.
    Label names are saved in the checkpoint's hyperparameters and in the network's config.

    Args:
        net: the network, or its ``NetBuilder``; its label names (``config.id2label`` or the builder's
            ``label_names``) set the classes.
        optimizer: a partial that takes parameter groups (see ``finetune.optim.optimizers.build_optimizer``).
        scheduler: a partial that takes the optimizer and ``num_training_steps``.
        label_smoothing: share of the target mass spread over all classes (0 = plain cross-entropy). It curbs
            over-confidence on small data; it also raises the lowest reachable loss, so loss thresholds move.
        loss: ``auto`` (cross-entropy for classes, MSE for scores), ``cross_entropy`` or ``mse``.
        metrics: metric names from the data (``data.metrics``: acc, f1, f1_pos, mcc; pearson, spearman, mse).
        main_metric: the metric tracked as ``val/<name>_best`` (``data.main_metric``).
        **loop: the loop's options (``FineTuneModule``): test sets, non-finite-loss policy, compile, freezing.
    """

    def __init__(
        self,
        net: PreTrainedModel | NetBuilder,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., Any] | None = None,
        label_smoothing: float = 0.0,
        loss: str = "auto",
        metrics: list[str] | None = None,
        main_metric: str | None = None,
        **loop: Any,
    ) -> None:
        labels = built_for(net)
        n, problem_type = len(labels["label_names"]), labels.get("problem_type")
        self.objective = objective_for(problem_type, n, loss, label_smoothing, metrics, main_metric)
        main = self.objective.main_metric
        super().__init__(net, optimizer, scheduler, main, main in LOWER_IS_BETTER, **loop)
        # What a checkpoint needs to rebuild the head: the classes and their names.
        self.save_hyperparameters(
            {"label_names": labels["label_names"], "num_labels": n, "problem_type": problem_type}, logger=False
        )

    pipeline_task = "text-classification"
    card_usage = (
        'pipe = pipeline("text-classification", model="{folder}", top_k=None)\n'
        'pipe(["{example}"], truncation=True)   # every label with its probability'
    )
    card_example = "The battery lasts all day and the screen is sharp."
    signature_keys = ("label_names",)

    def build_metrics(self, prefix: str) -> MetricCollection:
        return self.objective.metrics(prefix)

    def build_train_metrics(self) -> dict[str, Metric]:
        if self.objective.regression:
            return {}
        return {"acc": MulticlassAccuracy(num_classes=self.objective.num_outputs, average="micro")}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits for a tokenized batch (labels, if present, are ignored)."""
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.net(**inputs).logits

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        logits = self(batch)
        labels = batch["labels"]
        loss = self.objective.loss(logits, labels)  # cross-entropy (label smoothing) or MSE, in float32
        return StepOutput(loss, self.objective.predictions(logits), labels, labels.shape[0])

    def prediction_outputs(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Class probabilities per row (softmax in float32), or the predicted score for regression."""
        logits = self(batch).float()
        return list((logits[:, 0] if self.objective.regression else logits.softmax(-1)).cpu())

    def prediction_record(self, output: torch.Tensor, extra: dict[str, Any]) -> dict[str, Any]:
        """``{"label", "score", "probabilities": {name: p}}``, or ``{"score"}`` for regression."""
        if self.objective.regression:
            return {"score": float(output)}
        names, probabilities = self.hparams.label_names, output.tolist()
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        return {
            "label": names[best],
            "score": probabilities[best],
            "probabilities": dict(zip(names, probabilities, strict=True)),
        }

    @classmethod
    def logged_names(
        cls,
        label_names: list[str],
        problem_type: str,
        test_sets: list[str],
        metrics: list[str] | None = None,
        main_metric: str | None = None,
        loss: str = "auto",
    ) -> set[str]:
        """Every metric name this module logs for this data (what ``monitor`` and ``optimized_metric`` may name).

        Raises:
            UserError: a metric or a loss of another task (class metrics on scores ...).
        """
        objective = objective_for(problem_type, len(label_names), loss, 0.0, metrics, main_metric)
        train = [] if objective.regression else ["train/acc"]
        return {*train, *cls.loop_names(list(objective.metric_names), objective.main_metric, test_sets)}
