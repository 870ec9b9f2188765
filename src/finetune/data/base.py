"""``HFDataModule``: what every task's data shares. A task supplies loading, preprocessing and its collator.

The base owns the tokenizer (loaded once), the tokenized cache (a second run and every sweep job skip
tokenizing), the seeded, resumable, length-grouped train loader sharded over processes, the evaluation loaders
(each example on exactly one process) and the test sets.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from finetune.data.preprocess import check_max_length
from finetune.data.tokenized_cache import cache_key, load_cached, save_cached
from finetune.errors import UserError
from finetune.hf.pretrained import load_tokenizer
from finetune.trainer.precision import pad_multiple

if TYPE_CHECKING:
    from datasets import DatasetDict

log = logging.getLogger(__name__)


class HFDataModule(pl.LightningDataModule):
    """Tokenized splits ``train``, ``validation`` and the test sets, cached on disk, and their loaders.

    A task implements ``build`` (raw data to tokenized splits plus the label description the cache keeps),
    ``source_identity`` and ``cache_settings`` (what its cache key covers besides the tokenizer),
    ``collator``, ``read_labels`` (the label description back into attributes), and ``model_kwargs`` /
    ``module_kwargs`` (what the network and the module need from the data).

    Args:
        tokenizer: the model's tokenizer (hub name, folder or ``packaged:`` name).
        max_length: tokens kept per example (longer ones are truncated).
        batch_size: training batch per device; ``eval_batch_size`` for validation and test (no gradients:
            larger fits).
            The top-level ``global_batch_size`` sets ``batch_size`` before this is built
            (``finetune.trainer.distributed.apply_global_batch``).
        group_by_length: batch training examples of similar length together (shuffled, seeded), which cuts
            padding; see ``finetune.data.sampler``.
        num_workers: loader worker processes.
        pin_memory: page-locked batches (faster copies to a GPU); None: on when training on a GPU.
        val_fraction: share of train held out (seeded) when there is no validation split.
        seed: seed of that split and of the batch order.
        max_train_samples: cap the training split; ``max_eval_samples`` caps validation and test.
        cache_dir: where tokenized datasets are kept.
    """

    #: The settings a trained model fixes: ``eval.py`` takes them from the run and refuses them on its command line.
    run_settings: ClassVar[tuple[str, ...]] = ("tokenizer", "max_length")

    def __init__(
        self,
        tokenizer: str,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        group_by_length: bool = False,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        val_fraction: float = 0.1,
        seed: int = 42,
        max_train_samples: int | None = None,
        max_eval_samples: int | None = None,
        cache_dir: str = "outputs/.cache",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the task's own arguments too (Lightning collects the chain)
        for name in ("batch_size", "eval_batch_size", "max_length"):
            if int(getattr(self.hparams, name)) < 1:
                raise UserError(f"data.{name} must be a positive integer, got {getattr(self.hparams, name)}")
        if not 0.0 < val_fraction < 1.0:
            raise UserError(f"data.val_fraction must be between 0 and 1, got {val_fraction}")
        self.tokenizer = None
        self.splits: DatasetDict | None = None
        self._cached: tuple[DatasetDict, Any] | None = None  # what the preflight read from the cache

    # ---- what a task supplies
    def build(self) -> tuple[DatasetDict, Any]:
        """Raw data to tokenized splits (``train``, ``validation``, the test sets), and the JSON-able label
        description the cache keeps beside them."""
        raise NotImplementedError

    def source_identity(self) -> dict[str, Any]:
        """What identifies the raw data (names; files by path, size and mtime)."""
        raise NotImplementedError

    def cache_settings(self) -> dict[str, Any]:
        """The task's settings that change the tokenized result (columns, labels, split rules)."""
        raise NotImplementedError

    def read_labels(self, labels: Any) -> None:
        """Keep the label description ``build`` returned (or the cache held)."""
        raise NotImplementedError

    def collator(self, pad_to_multiple_of: int | None) -> Any:
        """Pads a list of tokenized examples into a batch."""
        raise NotImplementedError

    def inspect(self) -> tuple[dict[str, int], Any]:
        """Read and check the raw data without tokenizing: split sizes and the label description."""
        raise NotImplementedError

    def describe_labels(self) -> str:
        """The labels in a few words, for the preflight's summary."""
        raise NotImplementedError

    def prediction_features(self, rows: list[dict[str, Any]], column: str | None = None) -> list[dict[str, Any]]:
        """``predict.py``: each input row tokenized as the run's data was: ``{"inputs": <tokenizer output>,
        "extra": <what the module's prediction_record needs>}``, or ``{"error": <why it cannot be predicted>}``.

        Raises:
            UserError: the rows lack the text column (``column``, else the run's).
        """
        raise NotImplementedError(f"{type(self).__name__} does not predict (no prediction_features)")

    def predict_collator(self) -> Any:
        """Pads a list of ``prediction_features(...)["inputs"]`` into a batch."""
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(self.load_tokenizer())

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """What the network builder needs from the data (label names ...)."""
        return {}

    @property
    def module_kwargs(self) -> dict[str, Any]:
        """What the LightningModule needs from the data: at least its test sets."""
        return {"test_sets": self.test_sets}

    @property
    def test_sets(self) -> list[str]:
        """Names of the test sets, in test-dataloader order."""
        return ["test"]

    # ---- shared
    def prepare_data(self) -> None:
        """Load, encode and tokenize everything now (Lightning calls this on one process per node)."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        """Build the splits once (from the tokenized cache when it has them); later calls return at once."""
        if self.splits is not None:
            return
        started = time.perf_counter()
        check_max_length(self.hparams.max_length, self.load_tokenizer())
        key = self.cache_key()
        cached = self._cached or load_cached(self.hparams.cache_dir, key)
        source = "tokenized cache" if cached is not None else "raw files, tokenized and cached"
        if cached is None:
            cached = save_cached(self.hparams.cache_dir, key, *self.build())
        self.splits, labels = cached
        self.read_labels(labels)
        log.info("data: %s", {split: len(data) for split, data in self.splits.items()})
        log.info("data ready in %.2f s (%s)", time.perf_counter() - started, source)

    def preflight(self) -> list[str]:
        """Check the inputs as the run will read them, without tokenizing, and keep their labels: from the
        tokenized cache when a run already built it from these very files and settings (it checked every row),
        else from the raw data. Returns the summary line.

        Raises:
            UserError: at the first problem in the data.
        """
        check_max_length(self.hparams.max_length, self.load_tokenizer())
        cached = self._cached = load_cached(self.hparams.cache_dir, self.cache_key())
        if cached is not None:
            splits, labels = cached
            sizes = {split: len(data) for split, data in splits.items()}
        else:
            sizes, labels = self.inspect()
        self.read_labels(labels)
        counts = ", ".join(f"{size} {split}" for split, size in sizes.items())
        return [f"data: {self.hparams.dataset}: {counts} examples; {self.describe_labels()}"]

    @property
    def processor(self) -> Any:
        """What turns raw inputs into the model's: here the tokenizer (``TaskHooks.connect`` hands it over)."""
        return self.load_tokenizer()

    def load_tokenizer(self) -> Any:
        """The tokenizer, loaded once (the packaged model's hashes are checked then)."""
        self.tokenizer = self.tokenizer or load_tokenizer(self.hparams.tokenizer)
        return self.tokenizer

    def cache_key(self) -> str:
        """The tokenized cache's key for this source, these settings and this tokenizer."""
        return cache_key(self.source_identity(), self.load_tokenizer(), self.cache_settings())

    def _pad_multiple(self) -> int | None:
        trainer = self.trainer
        return pad_multiple(trainer.precision, trainer.strategy.root_device.type) if trainer is not None else None

    def _loader(self, split: str, loader_class: type[DataLoader] = DataLoader, **batching: Any) -> DataLoader:
        hp, on_gpu = self.hparams, self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        pin = on_gpu if hp.pin_memory is None else bool(hp.pin_memory)  # page-locked: async copies to a GPU
        workers = {"num_workers": hp.num_workers, "persistent_workers": hp.num_workers > 0}
        collate = self.collator(self._pad_multiple())
        return loader_class(self.splits[split], collate_fn=collate, pin_memory=pin, **workers, **batching)

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        """Seeded batches (length-grouped if ``group_by_length``) from a loader that resumes mid-epoch; under
        several processes each takes its part of every global batch (``EpochBatchSampler.shard``)."""
        import torch

        from finetune.data.resumable import ResumableDataLoader, ShuffledBatchSampler
        from finetune.data.sampler import LengthGroupedBatchSampler

        hp, train = self.hparams, self.splits["train"]
        rank, world = self._rank_and_world()
        if hp.group_by_length:
            lengths = [len(ids) for ids in train["input_ids"]]
            batches = LengthGroupedBatchSampler(lengths, hp.batch_size * world, hp.seed)
        else:
            batches = ShuffledBatchSampler(len(train), hp.batch_size * world, hp.seed)
        batches.shard(rank, world)
        # Overfitting a few batches means the same few batches every epoch, as Lightning does with its samplers.
        batches.reshuffle = not (self.trainer is not None and self.trainer.overfit_batches > 0)
        # Its own generator: the loader's per-epoch seed draw must not consume the global RNG (dropout's), or a
        # run resumed mid-epoch would draw different dropout masks than the uninterrupted run.
        generator = torch.Generator().manual_seed(hp.seed)
        return self._loader("train", ResumableDataLoader, batch_sampler=batches, generator=generator)

    def _eval_loader(self, split: str) -> DataLoader:
        rank, world = self._rank_and_world()
        if world == 1:
            return self._loader(split, batch_size=self.hparams.eval_batch_size)
        from finetune.trainer.compat import unrepeated_sampler

        # Each example exactly once over all processes (the default distributed sampler pads with repeats,
        # which would count some twice); the metrics gather the parts.
        sampler = unrepeated_sampler(self.splits[split], num_replicas=world, rank=rank)
        return self._loader(split, batch_size=self.hparams.eval_batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per entry of ``test_sets`` (a list when there are extra test sets)."""
        loaders = [self._eval_loader(name) for name in self.test_sets]
        return loaders if len(loaders) > 1 else loaders[0]
