"""Linear regression ``ŷ = θ0 + θ1·x`` with mean squared error: the optimization worked example.

Run through the same ``train()``, Trainer, config groups and loggers as the text classifiers
(``python train.py experiment=linear_regression``); the gradients are small enough to check by hand
(``closed_form_gradients``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from finetune.errors import UserError
from finetune.models.base import FineTuneModule
from finetune.models.contract import StepOutput
from finetune.models.net_builder import on_meta_device

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from torch.optim import Optimizer

Batch = dict[str, torch.Tensor]


def linear_net() -> torch.nn.Linear:
    """``torch.nn.Linear(1, 1)`` with weight θ1 and bias θ0 both zero.

    Zeros rather than a random draw: every optimizer starts from the same θ = (0, 0), so a comparison of
    optimizers measures the optimizers and not the luck of their initialisations.
    """
    net = torch.nn.Linear(1, 1)
    torch.nn.init.zeros_(net.weight)
    torch.nn.init.zeros_(net.bias)
    return net


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L(θ) = (1/n) Σ (ŷ − y)² for predictions and targets of the same shape (n,)."""
    return F.mse_loss(prediction, target, reduction="mean")


class LinearRegression(FineTuneModule):
    """Fits ``ŷ = θ0 + θ1·x`` (``net.bias`` is θ0, ``net.weight`` is θ1) by minimising the mean squared error.

    Logs the loop's names (``FineTuneModule``: ``train/loss``, ``val/loss``, ``val/loss_best``, ``test/loss``)
    and ``theta/0``, ``theta/1`` every step (the θ that produced that step's ``train/loss``, i.e. before the
    step's update).

    Args:
        net: a ``torch.nn.Linear(1, 1)`` (see ``linear_net``).
        optimizer: a partial that takes parameter groups (see ``finetune.optim.optimizers.build_optimizer``).
        scheduler: a partial that takes the optimizer and ``num_training_steps``; stepped every optimizer step.
        **loop: the loop's options (``FineTuneModule``), e.g. ``non_finite_loss``.
    """

    def __init__(
        self,
        net: torch.nn.Linear,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., Any] | None = None,
        **loop: Any,
    ) -> None:
        super().__init__(net, optimizer, scheduler, main_metric="loss", lower_is_better=True, **loop)

    @classmethod
    def logged_names(cls, test_sets: tuple[str, ...] | list[str] = ("test",)) -> set[str]:
        """What ``monitor`` and ``optimized_metric`` may name."""
        return {"theta/0", "theta/1", *cls.loop_names([], "loss", list(test_sets))}

    @classmethod
    def check_inputs(cls, model: DictConfig, datamodule: Any, ckpt_path: str | None) -> list[str]:
        """The line reads numbers, not text; a checkpoint holds this line's two weights."""
        from hydra.utils import instantiate

        from finetune.trainer.checkpoints import check_checkpoint_weights

        if hasattr(datamodule, "load_tokenizer"):
            raise UserError(f"the data is text but {cls.__name__} reads no text; pick a text model (model=minilm)")
        lines = [f"model: {cls.__name__}"]
        if ckpt_path:
            lines.append(check_checkpoint_weights(ckpt_path, instantiate(model.net)(**datamodule.model_kwargs)))
        return lines

    @classmethod
    def net_from_checkpoint(
        cls, net: DictConfig, hparams: dict[str, Any], weights: dict[str, torch.Tensor] | None
    ) -> torch.nn.Module:
        """The line on the meta device; its two weights come from the checkpoint (``load_state_dict(assign=True)``)."""
        from hydra.utils import instantiate

        return on_meta_device(instantiate(net))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions ŷ of shape (n,) for inputs x of shape (n, 1)."""
        return self.net(x).squeeze(-1)

    @property
    def theta(self) -> tuple[float, float]:
        """The current (θ0, θ1) as floats."""
        return float(self.net.bias.detach()), float(self.net.weight.detach())

    @torch.no_grad()
    def closed_form_gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """∂L/∂θ0 = (2/n) Σ (ŷ − y) and ∂L/∂θ1 = (2/n) Σ (ŷ − y)·x at the current θ, worked out by hand."""
        x = x.reshape(-1).to(self.net.weight.dtype)
        residual = self.net.bias + self.net.weight.reshape(()) * x - y.to(x.dtype)
        n = x.numel()
        return 2.0 / n * residual.sum(), 2.0 / n * (residual * x).sum()

    def step(self, batch: Batch) -> StepOutput:
        prediction = self(batch["x"])
        return StepOutput(mse(prediction, batch["y"]), prediction, batch["y"], batch["y"].shape[0])

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        theta0, theta1 = self.theta  # before this step's update
        size = batch["y"].shape[0]
        self.log_dict({"theta/0": theta0, "theta/1": theta1}, on_step=True, on_epoch=False, batch_size=size)
        return super().training_step(batch, batch_idx)
