"""The LightningModule: a Hugging Face sequence classifier, its loss, metrics and optimizer wiring."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torchmetrics import MaxMetric, MeanMetric, MetricCollection, MinMetric
from torchmetrics.classification import MulticlassAccuracy

from finetune.errors import UserError
from finetune.models.objectives import LOWER_IS_BETTER, Objective, objective_for
from finetune.models.optimization import OptimizedModule
from finetune.param_groups import freeze

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


if TYPE_CHECKING:
    from torch.optim import Optimizer
    from transformers import PreTrainedModel


class SequenceClassifier(OptimizedModule):
    """Fine-tunes an injected ``PreTrainedModel`` on sequence classification or regression.

    Logged: ``train/loss`` (progress bar) and ``train/grad_norm``; for classification ``train/acc``, ``val/acc``,
    ``val/f1``, ``val/acc_best`` and the same under ``test/``; for regression (``problem_type: regression``, one
    output, MSE) ``val/mse``, ``val/pearson``, ``val/spearman``, ``val/pearson_best``; ``val/loss`` and
    ``test/loss`` for both. Label names are saved in the checkpoint's hyperparameters and in the network's config.

    Args:
        net: the network; its ``config.num_labels`` sets the number of classes.
        optimizer: a partial that takes parameter groups (see ``finetune.optim.build_optimizer``).
        scheduler: a partial that takes the optimizer and ``num_training_steps``; stepped every optimizer step.
        label_smoothing: share of the target mass spread over all classes (0 = plain cross-entropy). It curbs
            over-confidence on small data; it also raises the lowest reachable loss, so loss thresholds move.
        loss: ``auto`` (cross-entropy for classes, MSE for scores), ``cross_entropy`` or ``mse``.
        metrics: metric names from the data (``data.metrics``: acc, f1, f1_pos, mcc; pearson, spearman, mse).
        main_metric: the metric tracked as ``val/<name>_best`` (``data.main_metric``).
        test_sets: names of the test sets, one per test dataloader (``test``, plus ``test_mismatched`` for MNLI).
        non_finite_loss: ``error`` stops at a NaN or infinite training loss, naming the step and the last good
            checkpoint; ``skip`` drops that batch (no optimizer step) and goes on.
        freeze_embeddings: no gradients for the embeddings: half of a small model's parameters, so a faster
            optimizer step, at some accuracy cost.
        freeze_layers: no gradients for the first N encoder layers.
        compile: ``torch.compile`` the network's forward (in place: checkpoints keep their parameter names).
    """

    def __init__(
        self,
        net: PreTrainedModel,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., Any] | None = None,
        label_smoothing: float = 0.0,
        freeze_embeddings: bool = False,
        freeze_layers: int = 0,
        loss: str = "auto",
        metrics: list[str] | None = None,
        main_metric: str | None = None,
        test_sets: list[str] | None = None,
        non_finite_loss: str = "error",
        compile: bool = False,
    ) -> None:
        super().__init__()
        if non_finite_loss not in ("error", "skip"):
            raise UserError(f"model.non_finite_loss must be 'error' or 'skip', got '{non_finite_loss}'")
        self.non_finite_loss = non_finite_loss
        self.compile_net = compile
        n = net.config.num_labels
        self.objective = objective_for(net.config.problem_type, n, loss, label_smoothing, metrics, main_metric)
        self.net = net.train()  # from_pretrained returns eval mode; fine-tuning wants dropout on
        freeze(self.net, embeddings=freeze_embeddings, first_layers=freeze_layers)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # What a checkpoint needs to rebuild the head: the classes and their names.
        self.save_hyperparameters(
            {
                "label_names": [net.config.id2label[i] for i in range(n)],
                "num_labels": n,
                "problem_type": net.config.problem_type,
                "model_type": net.config.model_type,
            },
            logger=False,
        )
        self.train_loss = MeanMetric(dist_sync_on_step=True)  # under DDP each step's value is the global mean
        self.train_acc = None if self.objective.regression else MulticlassAccuracy(num_classes=n, average="micro")
        self.val_metrics = self.objective.metrics("val/")
        self.val_loss = MeanMetric()
        self.val_best = MinMetric() if self.objective.main_metric in LOWER_IS_BETTER else MaxMetric()
        # Saved in checkpoints, so a run resumed mid-epoch ends with the same epoch means and best value.
        for running in (self.train_loss, self.train_acc, self.val_best):
            if running is not None:
                running.persistent(True)
        # One metric set per test set (MNLI has matched and mismatched), logged as <set>/<metric>.
        self.test_sets = list(test_sets or ["test"])
        self.test_metrics = torch.nn.ModuleList(self.objective.metrics(f"{name}/") for name in self.test_sets)
        self.test_losses = torch.nn.ModuleList(MeanMetric() for _ in self.test_sets)

    def configure_model(self) -> None:
        # Lightning calls this once the trainer is set up, on the right device; compiling earlier would trace
        # for the wrong device. nn.Module.compile keeps the state_dict keys (no ``_orig_mod.`` prefix).
        if self.compile_net and not getattr(self.net, "_compiled_call_impl", None):
            self.net.compile()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits for a tokenized batch (labels, if present, are ignored)."""
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.net(**inputs).logits

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The objective's loss (cross-entropy with label smoothing, or MSE) in float32."""
        return self.objective.loss(logits, labels)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        logits = self(batch)
        loss = self.loss(logits, batch["labels"])
        if not torch.isfinite(loss):
            return self._non_finite(loss)
        size = batch["labels"].shape[0]
        self.train_loss(loss.detach(), weight=size)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        if self.train_acc is not None:
            self.train_acc(logits.argmax(-1), batch["labels"])
            self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def _non_finite(self, loss: torch.Tensor) -> None:
        """Skip the batch (``model.non_finite_loss=skip``: no optimizer step) or stop with the step and the last
        good checkpoint, never a silent NaN model."""
        step = self.trainer.global_step
        if self.non_finite_loss == "skip":
            log.warning("non-finite loss %s at step %d: batch skipped", loss.item(), step)
            return None
        saved = [
            getattr(c, name, "")
            for name in ("last_model_path", "best_model_path")
            for c in self.trainer.checkpoint_callbacks
        ]
        last_good = next((path for path in saved if path), "none yet")
        raise NonFiniteLossError(
            f"non-finite training loss ({loss.item()}) at step {step}; last good checkpoint: {last_good} "
            "(lower optimizer.lr, keep gradient clipping on, or set model.non_finite_loss=skip)"
        )

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, self.val_loss)

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute()
        main = self.objective.main_metric
        self.log_dict(metrics, prog_bar=True)
        self.log("val/loss", self.val_loss.compute())
        if not self.trainer.sanity_checking:  # the best value comes from real epochs only
            self.val_best(metrics[f"val/{main}"])
            self.log(f"val/{main}_best", self.val_best.compute(), prog_bar=True)
        self.val_metrics.reset()
        self.val_loss.reset()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, self.test_metrics[dataloader_idx], self.test_losses[dataloader_idx])

    def on_test_epoch_end(self) -> None:
        for name, metrics, mean_loss in zip(self.test_sets, self.test_metrics, self.test_losses, strict=True):
            self.log_dict(metrics.compute(), add_dataloader_idx=False)
            self.log(f"{name}/loss", mean_loss.compute(), add_dataloader_idx=False)
            metrics.reset()
            mean_loss.reset()

    def _evaluate(self, batch: dict[str, torch.Tensor], metrics: MetricCollection, mean_loss: MeanMetric) -> None:
        logits = self(batch)
        mean_loss.update(self.loss(logits, batch["labels"]), weight=batch["labels"].shape[0])
        metrics.update(self.objective.predictions(logits), batch["labels"])

    @staticmethod
    def logged_names(objective: Objective, test_sets: list[str]) -> set[str]:
        """Every metric name this module logs: what ``monitor`` and ``optimized_metric`` may name.

        Kept beside the ``self.log`` calls above so the two change together. ``train/loss`` is logged per step
        and per epoch, which Lightning also reports as ``train/loss_step`` and ``train/loss_epoch``.
        """
        train = ["train/loss", "train/loss_step", "train/loss_epoch", "train/grad_norm"]
        train += [] if objective.regression else ["train/acc"]
        val = [*(f"val/{m}" for m in objective.metric_names), "val/loss", f"val/{objective.main_metric}_best"]
        test = [f"{name}/{m}" for name in test_sets for m in (*objective.metric_names, "loss")]
        return {*train, *val, *test}
