"""A training loader that resumes mid-epoch: same batch order, the batches already trained on skipped.

Lightning saves the state of every loader that has ``state_dict``/``load_state_dict`` in its checkpoints and
restores it before the first batch of a resumed run; the batch sampler's order depends only on (seed, epoch),
so skipping the batches already yielded reproduces the uninterrupted run's data exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class EpochBatchSampler(Sampler[list[int]]):
    """Base of the training batch samplers: an order fixed by (seed, epoch), ``skip`` for resuming, and
    ``shard`` for several processes.

    Subclasses define ``batches()``: this epoch's global batches, in order. With ``world`` processes each global
    batch is split into ``world`` near-equal parts and process ``rank`` takes its part, so N processes see the
    same global batches as one process with an N times larger batch; a last batch with fewer examples than
    processes is dropped (every process must take the same number of steps).
    """

    def __init__(self, batch_size: int, seed: int = 0) -> None:
        self.batch_size = batch_size  # of a global batch: per device × processes
        self.seed = seed
        self.epoch = 0
        self.skip = 0  # batches to drop from the next iteration (set by ResumableDataLoader)
        self.rank, self.world = 0, 1
        self.reshuffle = True  # False: every epoch the same batches (trainer.overfit_batches)

    def shard(self, rank: int, world: int) -> None:
        """Yield process ``rank``'s part of every batch, of ``world`` processes."""
        self.rank, self.world = rank, world

    @property
    def sampler(self) -> EpochBatchSampler:
        # Lightning calls set_epoch on ``loader.batch_sampler.sampler``, never on the batch sampler itself.
        return self

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (called by Lightning before every epoch)."""
        if self.reshuffle:
            self.epoch = epoch

    def batches(self) -> list[list[int]]:
        raise NotImplementedError

    def local_batches(self) -> list[list[int]]:
        """This process's part of this epoch's batches."""
        batches = self.batches()
        if self.world == 1:
            return batches
        local = []
        for batch in batches:
            if len(batch) < self.world:
                continue
            size, extra = divmod(len(batch), self.world)
            start = self.rank * size + min(self.rank, extra)
            local.append(batch[start : start + size + (self.rank < extra)])
        return local

    def __len__(self) -> int:
        return len(self.local_batches())

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        yield from self.local_batches()[skip:]


class ShuffledBatchSampler(EpochBatchSampler):
    """Batches of a seeded permutation that changes every epoch (epoch ``e`` uses ``seed + e``)."""

    def __init__(self, num_examples: int, batch_size: int, seed: int = 0) -> None:
        super().__init__(batch_size, seed)
        self.num_examples = num_examples

    def batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_examples, generator=generator)
        return [order[i : i + self.batch_size].tolist() for i in range(0, self.num_examples, self.batch_size)]


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over an ``EpochBatchSampler`` whose state is the epoch and the number of batches it has
    handed out in that epoch.

    The count is exact because Lightning does not prefetch from a loader whose length it knows.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch_and_count = (0, 0)
        self._to_skip: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        return self._counted()

    def _counted(self) -> Iterator[Any]:
        # A generator: its body runs at the first batch, after Lightning's set_epoch and load_state_dict, and it
        # sets the sampler's skip before the DataLoader's iterator (and its workers) start drawing batches.
        sampler = self.batch_sampler
        epoch, skip = sampler.epoch, 0
        if self._to_skip is not None and self._to_skip["epoch"] == epoch:
            skip = self._to_skip["batches"]
        self._to_skip = None
        self._epoch_and_count = (epoch, skip)
        if skip:
            sampler.skip = skip
        for batch in super().__iter__():
            self._epoch_and_count = (epoch, self._epoch_and_count[1] + 1)
            yield batch

    def state_dict(self) -> dict[str, int]:
        epoch, count = self._epoch_and_count
        return {"epoch": epoch, "batches": count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._to_skip = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}
