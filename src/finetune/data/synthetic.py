"""Generated data for worked examples: a noisy straight line, fitted by ``finetune.models.linear``."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from finetune.errors import UserError

Batch = dict[str, torch.Tensor]


class _WholeSplit(Dataset):
    """A dataset of one item: the whole split as one batch (read with ``DataLoader(batch_size=None)``)."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Batch:
        if index != 0:
            raise IndexError(index)
        return self.batch


class LinearRegressionDataModule(pl.LightningDataModule):
    """Points ``y = θ0 + θ1·x + ε`` with ``x ~ U(x_low, x_high)`` and ``ε ~ N(0, noise²)``, served full-batch.

    Every loader yields its whole split as a single batch ``{"x": (n, 1), "y": (n,)}``, so an epoch is one
    batch and one optimizer step: ``global_step`` counts gradient-descent iterations, as in the textbook.
    The points come from this module's own seeded generator, so every run (any optimizer, any global seed)
    fits the same data. The mean squared error of the true line on the training set, about ``noise²``, is the
    floor no optimizer can go below.

    Args:
        theta0: true intercept.
        theta1: true slope.
        noise: standard deviation of the Gaussian noise added to y.
        n_train: training points; ``n_val`` and ``n_test`` for validation and test.
        x_low: lower end of the x range; ``x_high`` the upper end.
        seed: seed of the generator that draws x and the noise.
    """

    def __init__(
        self,
        theta0: float = 2.0,
        theta1: float = -3.0,
        noise: float = 0.1,
        n_train: int = 256,
        n_val: int = 64,
        n_test: int = 64,
        x_low: float = -1.0,
        x_high: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if min(n_train, n_val, n_test) < 1:
            raise UserError(f"data.n_train, n_val and n_test must be at least 1, got {n_train}, {n_val}, {n_test}")
        if not x_low < x_high:
            raise UserError(f"data.x_low must be below data.x_high, got {x_low} and {x_high}")
        if noise < 0:
            raise UserError(f"data.noise is a standard deviation and cannot be negative, got {noise}")
        self.save_hyperparameters(logger=False)
        self.splits: dict[str, Batch] | None = None

    @property
    def true_theta(self) -> tuple[float, float]:
        """The (θ0, θ1) the data was generated from."""
        return self.hparams.theta0, self.hparams.theta1

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """What the network builder needs from the data: nothing (the line has one input and one output)."""
        return {}

    def preflight(self) -> list[str]:
        """The preflight's summary line (the points are drawn in ``setup``; nothing here can be wrong)."""
        hp = self.hparams
        return [f"data: {type(self).__name__}: {hp.n_train} train, {hp.n_val} validation, {hp.n_test} test points"]

    def setup(self, stage: str | None = None) -> None:
        """Draw the train/validation/test points once; later calls return at once."""
        if self.splits is not None:
            return
        hp = self.hparams
        generator = torch.Generator().manual_seed(hp.seed)
        self.splits = {
            name: self._draw(n, generator)
            for name, n in (("train", hp.n_train), ("val", hp.n_val), ("test", hp.n_test))
        }

    def _draw(self, n: int, generator: torch.Generator) -> Batch:
        hp = self.hparams
        x = hp.x_low + (hp.x_high - hp.x_low) * torch.rand(n, 1, generator=generator)
        noise = hp.noise * torch.randn(n, generator=generator)
        return {"x": x, "y": hp.theta0 + hp.theta1 * x.squeeze(1) + noise}

    def _loader(self, split: str) -> DataLoader:
        self.setup()
        # batch_size=None: no collation, the one item (the whole split) is the batch.
        return DataLoader(_WholeSplit(self.splits[split]), batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
