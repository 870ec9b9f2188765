"""Length-grouped batches: examples of similar length share a batch, so little compute goes to padding."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from finetune.data.resumable import EpochBatchSampler


class LengthGroupedBatchSampler(EpochBatchSampler):
    """Yields batches of indices grouped by length, in a shuffled, seeded order that changes every epoch.

    Each epoch shuffles all indices, cuts them into megabatches of ``megabatch_size`` batches, sorts each
    megabatch by length (longest first), cuts it into batches and shuffles the order of all batches. Batches
    stay random in content across epochs (the megabatch is drawn at random) but are near-uniform in length,
    the scheme of HF's ``group_by_length``. Lightning calls ``set_epoch`` before every epoch.

    Args:
        lengths: token count of every example.
        batch_size: examples per batch; the last batch may be smaller.
        seed: base seed; epoch ``e`` uses ``seed + e``.
        megabatch_size: batches per megabatch; larger groups lengths more tightly but shuffles less.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, megabatch_size: int = 50) -> None:
        super().__init__(batch_size, seed)
        self.lengths = torch.as_tensor(lengths)
        self.megabatch_size = megabatch_size

    def batches(self) -> list[list[int]]:
        """This epoch's batches, in order."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator)
        span = self.batch_size * self.megabatch_size
        batches: list[list[int]] = []
        for start in range(0, len(order), span):
            mega = order[start : start + span]
            mega = mega[torch.argsort(self.lengths[mega], descending=True, stable=True)]
            batches.extend(mega[i : i + self.batch_size].tolist() for i in range(0, len(mega), self.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
