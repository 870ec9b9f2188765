"""The data module: one class for every text-classification source, single texts or sentence pairs."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from finetune.data import sources
from finetune.data.labels import check_num_labels
from finetune.data.preprocess import arrange_splits, cap_splits, check_columns, check_max_length
from finetune.data.tokenized_cache import cache_key, load_cached, save_cached
from finetune.errors import UserError
from finetune.models.builders import load_tokenizer
from finetune.precision import pad_multiple
from finetune.utils.instantiate import plain

if TYPE_CHECKING:
    from datasets import DatasetDict

    from finetune.data.labels import LabelSpace

log = logging.getLogger(__name__)


class TextClassificationDataModule(pl.LightningDataModule):
    """Loads raw text, encodes labels, tokenizes once (cached on disk) and batches with dynamic padding.

    Where the data comes from is set by ``dataset``: ``finetune/demo`` (the packaged reviews), a file format
    (``csv``, ``json``, ``jsonl``, ``parquet``) with ``train_file`` and optional ``validation_file`` and
    ``test_file``, or a hub name (``nyu-mll/glue`` with ``subset``), which ``data_dir`` replaces by a local
    GLUE folder.

    Args:
        dataset: the source, as above.
        tokenizer: the model's tokenizer (hub name, folder or ``packaged:`` name).
        subset: hub configuration name (the GLUE task for ``nyu-mll/glue``).
        data_dir: a local GLUE task folder (``train.tsv``, ``dev.tsv``) read instead of the hub.
        train_file: training file for file formats; ``validation_file`` and ``test_file`` are optional.
        test_split: which source split is the test set; the GLUE configs test on ``validation`` because GLUE
            hides its test labels, and a validation split is then carved from train.
        text_column: the text; ``text_pair_column`` adds the second text of sentence-pair tasks.
        label_column: string names or integer ids; see ``finetune.data.labels``.
        label_names: class names in id order; ``num_labels`` checks the data against a known class count.
        metrics: the task's metrics (None: acc and f1 for classes, pearson, spearman and mse for scores).
        main_metric: the one that checkpointing, early stopping and sweeps follow (``val/<main_metric>``).
        extra_test_splits: more test sets, name -> source split (MNLI: ``test_mismatched`` ->
            ``validation_mismatched``); each is tested and reported as ``<name>/<metric>``.
        max_length: tokens kept per example (longer texts are truncated).
        batch_size: training batch per device; ``eval_batch_size`` for validation and test (no gradients:
            larger fits).
        global_batch_size: examples per optimizer step over all devices and accumulation; with
            ``micro_batch_size`` (default ``batch_size``) train() derives the per-device batch and
            ``trainer.accumulate_grad_batches`` from it (``finetune.distributed.apply_global_batch``).
        group_by_length: batch training examples of similar length together (shuffled, seeded), which
            cuts padding; see ``finetune.data.sampler``.
        num_workers: loader worker processes.
        pin_memory: page-locked batches (faster copies to a GPU); None: on when training on a GPU.
        val_fraction: share of train held out (seeded) when there is no validation split.
        seed: seed of that split.
        max_train_samples: cap the training split; ``max_eval_samples`` caps validation and test.
        cache_dir: where tokenized datasets are kept, keyed by data, labels, tokenizer and max_length.
    """

    def __init__(
        self,
        dataset: str,
        tokenizer: str,
        subset: str | None = None,
        data_dir: str | None = None,
        train_file: str | None = None,
        validation_file: str | None = None,
        test_file: str | None = None,
        test_split: str = "test",
        text_column: str = "text",
        text_pair_column: str | None = None,
        label_column: str = "label",
        label_names: list[str] | None = None,
        num_labels: int | None = None,
        metrics: list[str] | None = None,
        main_metric: str = "acc",
        extra_test_splits: dict[str, str] | None = None,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        global_batch_size: int | None = None,
        micro_batch_size: int | None = None,
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
        # Plain lists and dicts, not Hydra's containers: checkpoints must load with torch.load(weights_only=True).
        label_names, metrics, extra_test_splits = plain(label_names), plain(metrics), plain(extra_test_splits)
        self.save_hyperparameters(logger=False)
        for name in ("batch_size", "eval_batch_size", "max_length"):
            if int(getattr(self.hparams, name)) < 1:
                raise UserError(f"data.{name} must be a positive integer, got {getattr(self.hparams, name)}")
        if not 0.0 < val_fraction < 1.0:
            raise UserError(f"data.val_fraction must be between 0 and 1, got {val_fraction}")
        self.tokenizer = None
        self.splits: DatasetDict | None = None
        self.label_names: list[str] = []
        self.problem_type = "single_label_classification"

    @property
    def num_labels(self) -> int:
        """Number of classes, known once ``setup`` has run."""
        return len(self.label_names)

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """What the network builder needs from the data: label names (their count sizes the head), task type."""
        return {"label_names": self.label_names, "problem_type": self.problem_type}

    @property
    def test_sets(self) -> list[str]:
        """Names of the test sets, in test-dataloader order."""
        return ["test", *(self.hparams.extra_test_splits or {})]

    @property
    def module_kwargs(self) -> dict[str, Any]:
        """What the LightningModule needs from the data: the task's metrics and its test sets."""
        hp = self.hparams
        return {"metrics": hp.metrics, "main_metric": hp.main_metric, "test_sets": self.test_sets}

    def prepare_data(self) -> None:
        """Load, encode and tokenize everything now (Lightning calls this on one process per node)."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        """Build the train/validation/test splits once; later calls return at once."""
        if self.splits is not None:
            return
        hp, started = self.hparams, time.perf_counter()
        key = self.cache_key()
        check_max_length(hp.max_length, self.tokenizer)
        cached = load_cached(hp.cache_dir, key)
        source = "tokenized cache" if cached is not None else "raw files, tokenized and cached"
        if cached is None:
            splits, labels = self._build()
            cached = save_cached(hp.cache_dir, key, splits, labels)
        self.splits, (self.label_names, self.problem_type) = cached
        check_num_labels(hp.num_labels, self.label_names)
        log.info("data: %s", {split: len(data) for split, data in self.splits.items()})
        log.info("data ready in %.2f s (%s)", time.perf_counter() - started, source)

    def cache_key(self) -> str:
        """The tokenized cache's key for these files (path, size, mtime), settings and tokenizer (loaded here)."""
        self.tokenizer = self.tokenizer or load_tokenizer(self.hparams.tokenizer)
        return cache_key(self._source_identity(), self.tokenizer, self._settings())

    def _settings(self) -> dict[str, Any]:
        keys = ("test_split", "text_column", "text_pair_column", "label_column", "label_names", "max_length")
        keys += ("val_fraction", "seed", "max_train_samples", "max_eval_samples")
        extra = {"extra_test_splits": dict(self.hparams.extra_test_splits or {})}
        return {**{k: self.hparams[k] for k in keys}, **extra}

    def _source_identity(self) -> dict[str, Any]:
        hp = self.hparams
        files = self._local_files()
        if files is not None:
            return {
                "dataset": hp.dataset,
                "subset": hp.subset,
                "files": sources.file_signature(list(files.values())),
            }
        return {"dataset": hp.dataset, "subset": hp.subset}

    def _local_files(self) -> dict | None:
        hp = self.hparams
        if hp.dataset == sources.DEMO:
            return sources.demo_files()
        if hp.dataset in sources.FILE_FORMATS:
            return sources.user_files(hp.train_file, hp.validation_file, hp.test_file)
        if hp.data_dir:
            return sources.glue_files(hp.data_dir)
        return None

    def _load_raw(self) -> DatasetDict:
        hp = self.hparams
        files = self._local_files()
        if hp.dataset == sources.DEMO:
            return sources.load_files(files, "jsonl")
        if hp.dataset in sources.FILE_FORMATS:
            return sources.load_files(files, hp.dataset)
        if hp.data_dir:
            if hp.dataset not in sources.GLUE_HUB_NAMES:
                raise UserError(f"data.data_dir reads local GLUE folders only; data.dataset is '{hp.dataset}'")
            return sources.load_glue_dir(hp.data_dir, hp.subset)
        return sources.load_hub(hp.dataset, hp.subset)

    @property
    def text_columns(self) -> list[str]:
        """The text column, and the second text's column for sentence pairs."""
        return [c for c in (self.hparams.text_column, self.hparams.text_pair_column) if c]

    def labelled_splits(self) -> tuple[DatasetDict, LabelSpace]:
        """The raw splits, columns checked, arranged, capped and with every label encoded; not tokenized.

        ``validate=true`` stops here: every data mistake shows up without the cost of tokenizing.
        """
        from finetune.data.labels import encode_labels, infer_label_space

        hp = self.hparams
        raw = self._load_raw()
        check_columns(raw, [*self.text_columns, hp.label_column])
        splits = arrange_splits(raw, hp.test_split, hp.val_fraction, hp.seed, hp.extra_test_splits)
        splits = cap_splits(splits, hp.max_train_samples, hp.max_eval_samples)
        space = infer_label_space(splits, hp.label_column, hp.label_names)
        return encode_labels(splits, hp.label_column, space), space

    def _build(self) -> tuple[DatasetDict, tuple[list[str], str]]:
        splits, space = self.labelled_splits()
        return self._tokenize(splits, self.text_columns), (space.names, space.problem_type)

    def _tokenize(self, splits: DatasetDict, text_columns: list[str]) -> DatasetDict:
        tokenizer, max_length = self.tokenizer, self.hparams.max_length

        def tokenize(batch: dict[str, list]) -> dict[str, list]:
            texts = [[t or "" for t in batch[c]] for c in text_columns]
            return tokenizer(*texts, truncation=True, max_length=max_length)

        keep = {"labels"}
        return type(splits)(
            {
                split: data.map(tokenize, batched=True, remove_columns=[c for c in data.column_names if c not in keep])
                for split, data in splits.items()
            }
        )

    def _collator(self) -> Any:
        from transformers import DataCollatorWithPadding

        trainer = self.trainer
        multiple = pad_multiple(trainer.precision, trainer.strategy.root_device.type) if trainer is not None else None
        return DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=multiple)

    def _loader(self, split: str, loader_class: type[DataLoader] = DataLoader, **batching: Any) -> DataLoader:
        hp, on_gpu = self.hparams, self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        pin = on_gpu if hp.pin_memory is None else bool(hp.pin_memory)  # page-locked: async copies to a GPU
        workers = {"num_workers": hp.num_workers, "persistent_workers": hp.num_workers > 0}
        return loader_class(self.splits[split], collate_fn=self._collator(), pin_memory=pin, **workers, **batching)

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
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

        # Each example exactly once over all processes (the default distributed sampler pads with repeats,
        # which would count some twice); the metrics gather the parts.
        sampler = UnrepeatedDistributedSampler(self.splits[split], num_replicas=world, rank=rank, shuffle=False)
        return self._loader(split, batch_size=self.hparams.eval_batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per entry of ``test_sets`` (a list when there are extra test sets)."""
        loaders = [self._eval_loader(name) for name in self.test_sets]
        return loaders if len(loaders) > 1 else loaders[0]
