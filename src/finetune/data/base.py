"""``TaskDataModule``: what every task's data shares, whatever the modality. A task supplies loading, its
processing and its collator; ``finetune.data.text.TextDataModule`` adds the tokenizer for text tasks.

The base owns the settings every task repeats (batch sizes, workers, the held-out validation share, the seed,
caps), the optional on-disk cache of processed splits (a second run and every sweep job skip processing), the
seeded, resumable train loader sharded over processes with a ``batch_sampler`` hook (length grouping, token
budgets and packing fill it), the evaluation loaders (each example on exactly one process) and the test sets.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from finetune.data.tokenized_cache import load_cached, save_cached
from finetune.errors import UserError
from finetune.trainer.precision import pad_multiple

if TYPE_CHECKING:
    from datasets import DatasetDict

    from finetune.data.resumable import EpochBatchSampler

log = logging.getLogger(__name__)


class TaskDataModule(pl.LightningDataModule):
    """Splits ``train``, ``validation`` and the test sets, optionally cached on disk, and their loaders.

    A task implements ``build`` (raw data to model-ready splits plus the label description), ``inspect`` (the
    raw data checked without processing), ``read_labels``, ``describe_labels``, ``collator`` and ``model_kwargs``
    / ``module_kwargs`` (what the network and the module need from the data). To cache its splits it returns a
    key from ``cache_key`` (the base default: no cache); ``processor`` is what turns raw inputs into the model's
    (a tokenizer, an image processor, or None), handed to the module by ``TaskHooks.connect``.

    Args:
        batch_size: training batch per device; ``eval_batch_size`` for validation and test (no gradients:
            larger fits). The top-level ``global_batch_size`` sets ``batch_size`` before this is built
            (``finetune.trainer.distributed.apply_global_batch``).
        num_workers: loader worker processes.
        pin_memory: page-locked batches (faster copies to a GPU); None: on when training on a GPU.
        val_fraction: share of train held out (seeded) when there is no validation split.
        seed: seed of that split and of the batch order.
        max_train_samples: cap the training split; ``max_eval_samples`` caps validation and test.
        cache_dir: where processed splits are kept (tasks that cache).
    """

    #: The settings a trained model fixes: ``eval.py`` takes them from the run and refuses them on its command line.
    run_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        batch_size: int = 32,
        eval_batch_size: int = 64,
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
        for name in ("batch_size", "eval_batch_size"):
            if int(getattr(self.hparams, name)) < 1:
                raise UserError(f"data.{name} must be a positive integer, got {getattr(self.hparams, name)}")
        if not 0.0 < val_fraction < 1.0:
            raise UserError(f"data.val_fraction must be between 0 and 1, got {val_fraction}")
        self.splits: DatasetDict | None = None
        self._cached: tuple[DatasetDict, Any] | None = None  # what the preflight read from the cache or built

    # ---- what a task supplies
    def build(self) -> tuple[DatasetDict, Any]:
        """Raw data to model-ready splits (``train``, ``validation``, the test sets), and the JSON-able label
        description (the cache keeps it beside them)."""
        raise NotImplementedError

    def inspect(self) -> tuple[dict[str, int], Any]:
        """Read and check the raw data without processing it: split sizes and the label description (a task
        with a cache; without one the preflight builds the splits, which it then keeps)."""
        raise NotImplementedError

    def read_labels(self, labels: Any) -> None:
        """Keep the label description ``build`` returned (or the cache held)."""
        raise NotImplementedError

    def describe_labels(self) -> str:
        """The labels in a few words, for the preflight's summary."""
        raise NotImplementedError

    def collator(self, pad_to_multiple_of: int | None) -> Any:
        """Turns a list of examples into a batch."""
        raise NotImplementedError

    def split_collator(self, split: str) -> Any:
        """The collator of one split; a task whose training batches differ (augmentation) overrides it."""
        return self.collator(self._pad_multiple())

    def check_settings(self) -> None:
        """Checks of the task's settings against its processor, run by the preflight and by ``setup``."""

    def cache_key(self) -> str | None:
        """The key of the processed splits in ``cache_dir``; None (the default): no cache, build every time."""
        return None

    def batch_sampler(self, train: Any, global_batch: int) -> EpochBatchSampler:
        """The training batches of one epoch over all processes (the base shards them): seeded shuffles here;
        a task can group by length, fill token budgets or pack."""
        from finetune.data.resumable import ShuffledBatchSampler

        return ShuffledBatchSampler(len(train), global_batch, self.hparams.seed)

    @property
    def processor(self) -> Any:
        """What turns raw inputs into the model's (tokenizer, image processor); None for data the model reads as is."""
        return None

    def prediction_features(self, rows: list[dict[str, Any]], column: str | None = None) -> list[dict[str, Any]]:
        """``predict.py``: each input row processed as the run's data was: ``{"inputs": <model inputs>, "extra":
        <what the module's prediction_record needs>}``, or ``{"error": <why it cannot be predicted>}``.

        Raises:
            UserError: the rows lack the input column (``column``, else the run's).
        """
        raise NotImplementedError(f"{type(self).__name__} does not predict (no prediction_features)")

    @property
    def prediction_column(self) -> str:
        """The input column of ``predict.py``'s rows (a plain-text file's lines fill it)."""
        return "text"

    @classmethod
    def predicts(cls) -> bool:
        """Whether the task implements ``predict.py``'s hook (``prediction_features``)."""
        return cls.prediction_features is not TaskDataModule.prediction_features

    def predict_collator(self) -> Any:
        """Turns a list of ``prediction_features(...)["inputs"]`` into a batch."""
        return self.collator(None)

    def save_processor(self, folder: Any) -> None:
        """``export.py``: the processor into a Hugging Face folder, as training used it (none: nothing)."""
        if self.processor is not None:
            self.processor.save_pretrained(folder)

    def card_limits(self) -> list[str]:
        """``export.py``'s model card: what the inputs are limited to (length, size), one sentence each."""
        return []

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
        """Load and process everything now (Lightning calls this on one process per node)."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        """Build the splits once (from the cache when it has them); later calls return at once."""
        if self.splits is not None:
            return
        started = time.perf_counter()
        self.check_settings()
        key = self.cache_key()
        cached = self._cached or (load_cached(self.hparams.cache_dir, key) if key else None)
        kept = "cache" if key else "read by the preflight"
        source = kept if cached is not None else ("raw data, processed and cached" if key else "raw data")
        if cached is None:
            built = self.build()
            cached = save_cached(self.hparams.cache_dir, key, *built) if key else built
        self.splits, labels = cached
        self.read_labels(labels)
        log.info("data: %s", {split: len(data) for split, data in self.splits.items()})
        log.info("data ready in %.2f s (%s)", time.perf_counter() - started, source)

    def preflight(self) -> list[str]:
        """Check the inputs as the run will read them, without processing them, and keep their labels: from the
        cache when a run already built it from these very files and settings (it checked every row), else from
        the raw data. Returns the summary line.

        Raises:
            UserError: at the first problem in the data.
        """
        self.check_settings()
        key = self.cache_key()
        # Without a cache, processing happens on the fly, so building is reading: do it once, here, for setup too.
        cached = self._cached = load_cached(self.hparams.cache_dir, key) if key else self.build()
        if cached is not None:
            splits, labels = cached
            sizes = {split: len(data) for split, data in splits.items()}
        else:
            sizes, labels = self.inspect()
        self.read_labels(labels)
        counts = ", ".join(f"{size} {split}" for split, size in sizes.items())
        return [
            f"data: {self.hparams.get('dataset') or type(self).__name__}: {counts} examples; {self.describe_labels()}"
        ]

    def _pad_multiple(self) -> int | None:
        trainer = self.trainer
        return pad_multiple(trainer.precision, trainer.strategy.root_device.type) if trainer is not None else None

    def _loader(self, split: str, loader_class: type[DataLoader] = DataLoader, **batching: Any) -> DataLoader:
        hp, on_gpu = self.hparams, self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        pin = on_gpu if hp.pin_memory is None else bool(hp.pin_memory)  # page-locked: async copies to a GPU
        workers = {"num_workers": hp.num_workers, "persistent_workers": hp.num_workers > 0}
        collate = self.split_collator(split)
        return loader_class(self.splits[split], collate_fn=collate, pin_memory=pin, **workers, **batching)

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        """Seeded batches (``batch_sampler``) from a loader that resumes mid-epoch; under several processes each
        takes its part of every global batch (``EpochBatchSampler.shard``)."""
        import torch

        from finetune.data.resumable import ResumableDataLoader

        rank, world = self._rank_and_world()
        batches = self.batch_sampler(self.splits["train"], self.hparams.batch_size * world)
        batches.shard(rank, world)
        # Overfitting a few batches means the same few batches every epoch, as Lightning does with its samplers.
        batches.reshuffle = not (self.trainer is not None and self.trainer.overfit_batches > 0)
        # Its own generator: the loader's per-epoch seed draw must not consume the global RNG (dropout's), or a
        # run resumed mid-epoch would draw different dropout masks than the uninterrupted run.
        generator = torch.Generator().manual_seed(self.hparams.seed)
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
