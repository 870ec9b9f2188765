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
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from torchmetrics import MaxMetric, MeanMetric, MetricCollection, MinMetric

from finetune.adapters import state as adapter_state
from finetune.adapters.attach import attach_adapter, is_adapted
from finetune.adapters.state import base_digest
from finetune.models.contract import TaskHooks
from finetune.models.net_builder import NetBuilder
from finetune.models.non_finite import NonFiniteGuard
from finetune.models.signature import SIGNATURE
from finetune.optim.optimizers import build_optimizer
from finetune.optim.param_groups import freeze, matrix_names
from finetune.trainer import compat

if TYPE_CHECKING:
    from torch.optim import Optimizer

log = logging.getLogger(__name__)


class FineTuneModule(TaskHooks, pl.LightningModule):
    """Fine-tunes an injected network: training, validation and test steps, their logging, the best value,
    several test sets, the optimizer and schedule, clipping and the gradient norm.

    A task implements ``step`` (one batch to a ``StepOutput``), ``build_metrics`` (the metrics for one split,
    keys prefixed) and ``logged_names`` (what it logs, for the preflight's checks of ``monitor``); optionally
    ``build_train_metrics``. For ``predict.py`` and ``export.py`` it sets ``pipeline_task`` and implements
    ``prediction_outputs`` and ``prediction_record``.

    Args:
        net: the network to fine-tune, or a ``NetBuilder`` that builds it in ``configure_model`` (``train()``'s
            way: on the strategy's device, sharded under FSDP, never as a full copy first).
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
        adapter: a peft config class with its options (``conf/adapter/``): the network trains adapters and its task
            head only, and checkpoints hold just those (``finetune.adapters``); None: every weight trains.
        adapter_task_type: the task's ``peft.TaskType`` name (``conf/task/``; None: peft's generic ``PeftModel``).
        head_modules: the modules trained in full beside an adapter (``conf/task/``): ``auto`` finds the head.
    """

    def __init__(
        self,
        net: torch.nn.Module | NetBuilder,
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
        adapter: Callable[..., Any] | None = None,
        adapter_task_type: str | None = None,
        head_modules: str | list[str] = "auto",
    ) -> None:
        super().__init__()
        self.non_finite = NonFiniteGuard(non_finite_loss, non_finite_window, non_finite_max_skipped)
        # adapter=none composes to an empty node, not None: only a callable config class attaches adapters
        self.adapter = adapter if callable(adapter) else None
        self.adapter_task = {"task_type": adapter_task_type, "head": head_modules}
        self.freezing = {"embeddings": freeze_embeddings, "first_layers": freeze_layers}
        self.net: torch.nn.Module | None = None
        self.net_builder = None if isinstance(net, torch.nn.Module) else net  # built in configure_model
        if self.net_builder is None:
            self._take_net(net)
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

    # ---- Lightning hooks, in the style guide's order
    def configure_model(self) -> None:
        # Lightning calls this once the strategy is set up, inside its device, sharding and precision contexts:
        # the network is built where it will live. Compiling earlier would trace for the wrong device;
        # nn.Module.compile keeps the state_dict keys (no ``_orig_mod.`` prefix).
        self.build_net()
        if self.compile_net and not compat.is_compiled(self.net):
            self.net.compile()

    def setup(self, stage: str) -> None:
        if self._trainer is not None and self.trainer.datamodule is not None:
            self.connect(self.trainer.datamodule)

    def build_net(self) -> torch.nn.Module:
        """The network, built now if it was given as a builder (``finetune.models.net_builder``). Lightning calls
        this through ``configure_model``; call it yourself to use a module outside a trainer."""
        if self.net is None:
            self._take_net(self.net_builder())
        return self.net

    def _take_net(self, net: torch.nn.Module) -> None:
        """Adopt the network: adapters attached, layers frozen, dropout on (``from_pretrained`` returns eval mode)
        and what must be read before a strategy wraps it."""
        self.net = attach_adapter(net, self.adapter, **self.adapter_task) if self.adapter else net
        freeze(self.net.train(), **self.freezing)
        # Before the strategy wraps the network: under FSDP its parameters then look flat (1-D).
        self.matrices = matrix_names(self.net)
        if is_adapted(self.net):  # the frozen base, as loaded
            self.trainable_keys, self.base_sha256 = adapter_state.trainable_keys(self.net), base_digest(self.net)
            # FSDP loads a checkpoint's weights itself, before on_load_checkpoint could add the base: the
            # adapter-only state must load without the frozen keys (they stay as built)
            self.strict_loading = False

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[SIGNATURE] = self.checkpoint_signature()  # what the preflight compares before resuming
        if is_adapted(self.net):  # the adapter and head only: the frozen base is the pretrained model's
            adapter_state.keep_trainable(checkpoint, self.net, self.trainable_keys, self.base_sha256)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The frozen base comes from the network just built; its hash must be the one the adapter trained on.
        if "state_dict" in checkpoint:  # (FSDP took the weights out and loaded them already)
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
        out = self.evaluation_step(batch)
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
            matrices=self.matrices,
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
