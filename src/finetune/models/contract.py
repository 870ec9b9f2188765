"""``TaskHooks``: what a task supplies to the shared loop (``finetune.models.base.FineTuneModule``), with the
defaults a task keeps unless it differs. Every hook is documented here, in one place: adding a task means
overriding some of these, never the loop's own Lightning hooks.

Training: ``step`` (one batch to a ``StepOutput``), ``build_metrics`` / ``build_train_metrics``, ``logged_names``.
Evaluation: ``evaluation_step`` (default: ``step``; a generating or post-processing task overrides it).
Data: ``connect`` (called in ``setup``: the data's processor, data-dependent metrics).
Checkpoints: ``signature`` (what a checkpoint of this task is bound to; the preflight compares it).
After training: ``predicts``, ``prediction_outputs``, ``prediction_record``, ``pipeline_task``, ``save_pretrained``,
``net_from_checkpoint``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torchmetrics import Metric, MetricCollection

from finetune.adapters.attach import is_adapted

if TYPE_CHECKING:
    from omegaconf import DictConfig

PREDICTION_HOOKS = ("prediction_outputs", "prediction_record")
# What Lightning itself reports for a metric logged both per step and per epoch.
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


class TaskHooks:
    """The hooks a task overrides; ``FineTuneModule`` calls them and owns everything around them."""

    pipeline_task: ClassVar[str | None] = None  # the transformers pipeline an export serves (None: no export)
    #: The model card's usage example (``{folder}``: the export, ``{example}``: ``card_example``) for ``pipeline_task``.
    card_usage: ClassVar[str] = 'pipe = pipeline(model="{folder}")'
    card_example: ClassVar[str] = ""
    #: The data-given settings (``model_kwargs`` / hyperparameters) a checkpoint of this task is bound to.
    signature_keys: ClassVar[tuple[str, ...]] = ()

    # ---- training
    def step(self, batch: Any) -> StepOutput:
        """One batch through the network: loss, predictions, targets and batch size."""
        raise NotImplementedError

    def build_metrics(self, prefix: str) -> MetricCollection:
        """The task's evaluation metrics, keys starting with ``prefix`` (``val/``, ``test/``)."""
        return MetricCollection({}, prefix=prefix)

    def build_train_metrics(self) -> dict[str, Metric]:
        """Metrics logged per training epoch as ``train/<name>``, fed the training steps' predictions."""
        return {}

    # ---- evaluation and data
    def evaluation_step(self, batch: Any) -> StepOutput:
        """One validation or test batch: by default the training step's loss and predictions. A task that
        generates (causal LM, seq2seq) or post-processes (question answering) overrides this one hook; the base
        still owns the loss mean, the metrics' logging, the best value and the test sets."""
        return self.step(batch)

    def connect(self, datamodule: Any) -> None:
        """Called in ``setup`` with the run's data module (and by ``eval``/``predict``/``export``): keeps its
        ``processor`` (a tokenizer, an image processor or None). A task whose metrics depend on the data (a
        vocabulary, n-best settings) builds them here."""
        self.processor = getattr(datamodule, "processor", None)

    @classmethod
    def check_inputs(cls, model: DictConfig, datamodule: Any, ckpt_path: str | None) -> list[str]:
        """The preflight's checks of the network against the data and the checkpoint, as summary lines; here
        for a Hugging Face network (``finetune.hf.checks``). Loads no weights."""
        from finetune.hf.checks import check_hf_model

        return check_hf_model(model, datamodule, ckpt_path, cls)

    # ---- checkpoints
    @classmethod
    def signature(cls, model_type: str | None, data: dict[str, Any]) -> dict[str, Any]:
        """What a checkpoint of this task is bound to: the task, the network's ``model_type`` and the data's
        ``signature_keys`` (label names ...). The module saves it in every checkpoint (``checkpoint_signature``)
        and the preflight compares it with the one the config and data would give (``finetune.models.signature``)."""
        return {"task": cls.__name__, "model_type": model_type, **{k: data.get(k) for k in cls.signature_keys}}

    def checkpoint_signature(self) -> dict[str, Any]:
        """This module's ``signature``, from its network's config and its saved hyperparameters."""
        config = getattr(self.net, "config", None)
        return type(self).signature(getattr(config, "model_type", None), dict(self.hparams))

    # ---- after training
    def prediction_outputs(self, batch: Any) -> list[torch.Tensor]:
        """``predict.py``: what the model says about each row of a batch (probabilities ...), on the CPU."""
        raise NotImplementedError(f"{type(self).__name__} does not predict (no prediction_outputs)")

    def prediction_record(self, output: torch.Tensor, extra: dict[str, Any]) -> dict[str, Any]:
        """``predict.py``: one row's JSON fields from its ``output`` and what its features kept aside (``extra``)."""
        raise NotImplementedError(f"{type(self).__name__} does not predict (no prediction_record)")

    @classmethod
    def card_purpose(cls, labels: list[str] | None) -> str:
        """The model card's "It ..." sentence: what the model does with an input."""
        return f"assigns one of {len(labels)} labels ({', '.join(labels)})" if labels else "assigns a score"

    @classmethod
    def predicts(cls) -> bool:
        """Whether the task implements ``predict.py``'s hooks (``prediction_outputs`` and ``prediction_record``)."""
        return all(getattr(cls, hook) is not getattr(TaskHooks, hook) for hook in PREDICTION_HOOKS)

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
    def net_from_checkpoint(
        cls, net: DictConfig, hparams: dict[str, Any], weights: dict[str, torch.Tensor] | None
    ) -> torch.nn.Module:
        """A saved run's network with the checkpoint's ``weights`` (the ``net.`` entries, prefix cut), built from
        its config with the labels its hyperparameters name, on the meta device: nothing is initialised and no
        pretrained weights are read. ``weights`` None (an adapter checkpoint, which holds no base): the base is
        loaded as the run loaded it. The default serves Hugging Face networks (``finetune.hf.hf_model``)."""
        from hydra.utils import instantiate

        labels = {k: hparams[k] for k in ("label_names", "problem_type") if k in hparams}
        return instantiate(net, **({} if weights is None else {"weights": weights}))(**labels)

    @classmethod
    def loop_names(cls, metric_names: list[str], main_metric: str, test_sets: list[str]) -> set[str]:
        """The names the base logs around a task's ``metric_names``: what ``monitor`` may watch."""
        val = [*(f"val/{m}" for m in metric_names), "val/loss", f"val/{main_metric}_best"]
        test = [f"{name}/{m}" for name in test_sets for m in (*metric_names, "loss")]
        return {*TRAIN_LOSS_NAMES, *val, *test}
