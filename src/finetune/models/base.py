"""``FineTuneModule``: the loop every task shares. A task supplies one step and its metrics; the base owns the rest.

The base logs ``train/loss`` (every step and per epoch), ``train/grad_norm`` (before clipping), the task's
training metrics per epoch, ``val/<metric>`` and ``val/loss`` after each validation, the best value of the main
metric as ``val/<main>_best``, and ``<set>/<metric>`` plus ``<set>/loss`` for each test set. Exact resume (random
streams, the loader's position) is a callback, ``finetune.trainer.exact_resume.ExactResume``, so no module can
drop it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import lightning.pytorch as pl
import torch
from torchmetrics import MaxMetric, MeanMetric, Metric, MetricCollection, MinMetric

from finetune.adapters import state as adapter_state
from finetune.adapters.attach import attach_adapter, is_adapted
from finetune.adapters.state import base_digest
from finetune.models.non_finite import NonFiniteGuard
from finetune.optim.optimizers import build_optimizer
from finetune.optim.param_groups import freeze, matrix_names
from finetune.trainer import compat

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from torch.optim import Optimizer

log = logging.getLogger(__name__)
# What Lightning itself reports for a metric logged both per step and per epoch.
PREDICTION_HOOKS = ("prediction_outputs", "prediction_record")
TRAIN_LOSS_NAMES = ("train/loss", "train/loss_step", "train/loss_epoch", "train/grad_norm")


@dataclass
class StepOutput:
    """What a task's ``step`` returns: the loss and what its metrics take.

    Attributes:
        loss: the mean loss of the batch (a scalar with gradients).
        predictions: what the metrics compare with ``targets`` (class ids, scores, tag ids ...).
        targets: the batch's labels in the metrics' form.
        size: the number of examples, the weight of this batch in epoch means.
    """

    loss: torch.Tensor
    predictions: Any
    targets: Any
    size: int


class FineTuneModule(pl.LightningModule):
    """Fine-tunes an injected network: training, validation and test steps, their logging, the best value,
    several test sets, the optimizer and schedule, clipping and the gradient norm.

    A task implements ``step`` (one batch to a ``StepOutput``), ``build_metrics`` (the metrics for one split,
    keys prefixed) and ``logged_names`` (what it logs, for the preflight's checks of ``monitor``); optionally
    ``build_train_metrics``. For ``predict.py`` and ``export.py`` it sets ``pipeline_task`` and implements
    ``prediction_outputs`` and ``prediction_record``.

    Args:
        net: the network to fine-tune.
        optimizer: a partial that takes parameter groups (see ``finetune.optim.optimizers.build_optimizer``).
        scheduler: a partial that takes the optimizer and ``num_training_steps``; stepped every optimizer step,
            unless it returns a full Lightning scheduler config (plateau: after validation, on a metric).
        main_metric: the metric tracked as ``val/<main_metric>_best`` (``loss`` or one of the task's).
        lower_is_better: the direction of ``main_metric`` (True for losses and errors).
        test_sets: names of the test sets, one per test dataloader (``test``, plus e.g. ``test_mismatched``).
        non_finite_loss: ``error`` stops at a NaN or infinite training loss, naming the step and the last good
            checkpoint; ``skip`` drops that batch (no optimizer step) and goes on, unless more than
            ``non_finite_max_skipped`` of the last ``non_finite_window`` batches were skipped.
        compile: ``torch.compile`` the network's forward (in place: checkpoints keep their parameter names).
        freeze_embeddings: no gradients for the embeddings: a faster optimizer step, at some accuracy cost.
        freeze_layers: no gradients for the first N encoder layers.
        layer_decay: each depth below the top learns this factor as fast as the one above (``param_groups``).
        head_lr: the task head's own learning rate.
        peft: a peft config class with its options (``conf/peft/``): the network trains adapters and its task head
            only, and checkpoints hold just those (``finetune.adapters``); None: every weight trains.
    """

    pipeline_task: ClassVar[str | None] = None  # the transformers pipeline an export serves (None: no export)
    peft_task_type: ClassVar[str | None] = None  # the task's peft.TaskType name (None: peft's generic PeftModel)

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., Any] | None = None,
        main_metric: str = "loss",
        lower_is_better: bool = True,
        test_sets: list[str] | None = None,
        non_finite_loss: str = "error",
        non_finite_window: int = 20,
        non_finite_max_skipped: float = 0.25,
        compile: bool = False,
        freeze_embeddings: bool = False,
        freeze_layers: int = 0,
        layer_decay: float | None = None,
        head_lr: float | None = None,
        peft: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self.non_finite = NonFiniteGuard(non_finite_loss, non_finite_window, non_finite_max_skipped)
        # peft=none composes to an empty node, not None: only a callable config class attaches adapters
        self.net = attach_adapter(net, peft, self.peft_task_type) if callable(peft) else net
        freeze(self.net, embeddings=freeze_embeddings, first_layers=freeze_layers)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.group_shaping = {"layer_decay": layer_decay, "head_lr": head_lr}
        self.main_metric, self.compile_net = main_metric, compile
        self.train_loss = MeanMetric(dist_sync_on_step=True)  # under DDP each step's value is the global mean
        self.train_metrics = torch.nn.ModuleDict(self.build_train_metrics())
        self.val_metrics = self.build_metrics("val/")
        self.val_loss = MeanMetric()
        self.val_best = MinMetric() if lower_is_better else MaxMetric()
        # Saved in checkpoints, so a run resumed mid-epoch ends with the same epoch means and best value.
        for running in (self.train_loss, *self.train_metrics.values(), self.val_best):
            running.persistent(True)
        # One metric set per test set (MNLI has matched and mismatched), logged as <set>/<metric>.
        self.test_sets = list(test_sets or ["test"])
        self.test_metrics = torch.nn.ModuleList(self.build_metrics(f"{name}/") for name in self.test_sets)
        self.test_losses = torch.nn.ModuleList(MeanMetric() for _ in self.test_sets)

    # ---- what a task supplies
    def step(self, batch: Any) -> StepOutput:
        """One batch through the network: loss, predictions, targets and batch size."""
        raise NotImplementedError

    def build_metrics(self, prefix: str) -> MetricCollection:
        """The task's evaluation metrics, keys starting with ``prefix`` (``val/``, ``test/``)."""
        return MetricCollection({}, prefix=prefix)

    def build_train_metrics(self) -> dict[str, Metric]:
        """Metrics logged per training epoch as ``train/<name>``, fed the training steps' predictions."""
        return {}

    @classmethod
    def check_inputs(cls, model: DictConfig, datamodule: Any, ckpt_path: str | None) -> list[str]:
        """The preflight's checks of the network against the data and the checkpoint, as summary lines; here
        for a Hugging Face network (``finetune.hf.checks``). Loads no weights."""
        from finetune.hf.checks import check_hf_model

        return check_hf_model(model, datamodule, ckpt_path, cls.peft_task_type)

    def prediction_outputs(self, batch: Any) -> list[torch.Tensor]:
        """``predict.py``: what the model says about each row of a batch (probabilities ...), on the CPU."""
        raise NotImplementedError(f"{type(self).__name__} does not predict (no prediction_outputs)")

    def prediction_record(self, output: torch.Tensor, extra: dict[str, Any]) -> dict[str, Any]:
        """``predict.py``: one row's JSON fields from its ``output`` and what its features kept aside (``extra``)."""
        raise NotImplementedError(f"{type(self).__name__} does not predict (no prediction_record)")

    @classmethod
    def predicts(cls) -> bool:
        """Whether the task implements ``predict.py``'s hooks (``prediction_outputs`` and ``prediction_record``)."""
        return all(getattr(cls, hook) is not getattr(FineTuneModule, hook) for hook in PREDICTION_HOOKS)

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> tuple[list[int], list[torch.Tensor]]:
        """The rows of a prediction batch (their input order) and the task's outputs for them."""
        rows = batch.pop("row").tolist()
        return rows, self.prediction_outputs(batch)

    def save_pretrained(self, folder: Any, merge: bool = False) -> None:
        """``export.py``: the network as a Hugging Face folder (safetensors weights and its config); an adapted
        one as its adapter in peft's format (head included), or with ``merge`` as a plain model."""
        from finetune.errors import UserError

        if self.pipeline_task is None or not hasattr(self.net, "save_pretrained"):
            raise UserError(f"{type(self).__name__} has no Hugging Face form to export; export takes a run of a "
                            "Hugging Face task (sequence or token classification)")  # fmt: skip
        net = self.net.merge_and_unload() if merge and is_adapted(self.net) else self.net
        net.save_pretrained(folder)

    @classmethod
    def net_from_config(cls, net: DictConfig, hparams: dict[str, Any], adapter_only: bool = False) -> torch.nn.Module:
        """A saved run's network, to be filled from its checkpoint: built from its config with the labels the
        checkpoint's hyperparameters name; an HF network from its config alone (no pretrained weights read),
        unless the checkpoint holds adapters only (``adapter_only``): then the base is loaded as the run loaded it."""
        from hydra.utils import instantiate

        labels = {k: hparams[k] for k in ("label_names", "problem_type") if k in hparams}
        options = {"random_init": True} if "random_init" in net and not adapter_only else {}
        return instantiate(net, **options)(**labels)

    @classmethod
    def loop_names(cls, metric_names: list[str], main_metric: str, test_sets: list[str]) -> set[str]:
        """The names the base logs around a task's ``metric_names``: what ``monitor`` may watch."""
        val = [*(f"val/{m}" for m in metric_names), "val/loss", f"val/{main_metric}_best"]
        test = [f"{name}/{m}" for name in test_sets for m in (*metric_names, "loss")]
        return {*TRAIN_LOSS_NAMES, *val, *test}

    # ---- Lightning hooks, in the style guide's order
    def configure_model(self) -> None:
        # Lightning calls this once the trainer is set up, on the right device; compiling earlier would trace
        # for the wrong device. nn.Module.compile keeps the state_dict keys (no ``_orig_mod.`` prefix).
        if self.compile_net and not compat.is_compiled(self.net):
            self.net.compile()

    def setup(self, stage: str) -> None:
        # Before the strategy wraps the network: under FSDP its parameters then look flat (1-D).
        if not hasattr(self, "matrices"):
            self.matrices = matrix_names(self.net)
        if is_adapted(self.net) and not hasattr(self, "base_sha256"):  # the frozen base, as loaded
            self.trainable_keys, self.base_sha256 = adapter_state.trainable_keys(self.net), base_digest(self.net)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if is_adapted(self.net):  # the adapter and head only: the frozen base is the pretrained model's
            adapter_state.keep_trainable(checkpoint, self.net, self.trainable_keys, self.base_sha256)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The frozen base comes from the network just built; its hash must be the one the adapter trained on.
        adapter_state.fill_frozen(checkpoint, self, getattr(self, "base_sha256", None), "being loaded")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        out = self.step(batch)
        if not torch.isfinite(out.loss):
            return self.non_finite.non_finite(out.loss.item(), self.trainer)  # skipped: no optimizer step
        self.non_finite.finite(self.trainer)
        self.train_loss(out.loss.detach(), weight=out.size)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=out.size)
        for name, metric in self.train_metrics.items():
            metric(out.predictions, out.targets)
            self.log(f"train/{name}", metric, on_step=False, on_epoch=True, batch_size=out.size)
        return out.loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, self.val_loss)

    def on_validation_epoch_end(self) -> None:
        metrics = {**self.val_metrics.compute(), "val/loss": self.val_loss.compute()}
        self.log_dict(metrics, prog_bar=True)
        if not self.trainer.sanity_checking:  # the best value comes from real epochs only
            self.val_best(metrics[f"val/{self.main_metric}"])
            self.log(f"val/{self.main_metric}_best", self.val_best.compute(), prog_bar=True)
        self.val_metrics.reset()
        self.val_loss.reset()

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, self.test_metrics[dataloader_idx], self.test_losses[dataloader_idx])

    def on_test_epoch_end(self) -> None:
        for name, metrics, mean_loss in zip(self.test_sets, self.test_metrics, self.test_losses, strict=True):
            self.log_dict(metrics.compute(), add_dataloader_idx=False)
            self.log(f"{name}/loss", mean_loss.compute(), add_dataloader_idx=False)
            metrics.reset()
            mean_loss.reset()

    def _evaluate(self, batch: Any, metrics: MetricCollection, mean_loss: MeanMetric) -> None:
        out = self.step(batch)
        mean_loss.update(out.loss, weight=out.size)
        if metrics:
            metrics.update(out.predictions, out.targets)

    def configure_optimizers(self) -> Any:
        """Complete the optimizer and scheduler partials."""
        # Under 16-mixed Lightning cannot clip the gradients of a fused optimizer (it unscales internally).
        optimizer = build_optimizer(
            self.optimizer_factory,
            self.net,
            allow_fused=self._loss_scaler() is None,
            matrices=getattr(self, "matrices", None),
            **self.group_shaping,
        )
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, num_training_steps=total_steps)
        config = scheduler if isinstance(scheduler, dict) else {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": config}

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        # Lightning calls this after backward (and after unscaling under 16-mixed) but before clipping,
        # so train/grad_norm is the norm the clipping sees.
        if self.trainer.global_step % self.trainer.log_every_n_steps == 0:
            grads = [p.grad for p in self.net.parameters() if p.grad is not None]
            self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads), on_step=True, on_epoch=False)

    def configure_gradient_clipping(
        self,
        optimizer: Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip as configured. Without a loss scaler (32 or bf16) clip directly, because Lightning refuses
        any mixed precision with a fused optimizer although only fp16's loss scaling needs the refusal."""
        if self._loss_scaler() is not None or not gradient_clip_val:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        elif gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(self.net.parameters(), gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), gradient_clip_val)

    def _loss_scaler(self) -> Any:
        return getattr(self.trainer.precision_plugin, "scaler", None)
