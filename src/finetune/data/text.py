"""``TextDataModule``: the text layer on ``TaskDataModule``: the tokenizer (loaded once, the data's processor),
``max_length`` checked against it, length-grouped training batches and the tokenized cache, keyed by the source,
the task's settings and the tokenizer."""

from __future__ import annotations

from typing import Any, ClassVar

from finetune.data.base import TaskDataModule
from finetune.data.preprocess import check_max_length
from finetune.data.tokenized_cache import cache_key
from finetune.errors import UserError
from finetune.hf.pretrained import load_tokenizer


class TextDataModule(TaskDataModule):
    """Tokenized splits. A text task implements, besides ``TaskDataModule``'s hooks, ``source_identity`` and
    ``cache_settings`` (what its cache key covers besides the tokenizer).

    Args:
        tokenizer: the model's tokenizer (hub name, folder or ``packaged:`` name).
        max_length: tokens kept per example (longer ones are truncated).
        group_by_length: batch training examples of similar length together (shuffled, seeded), which cuts
            padding; see ``finetune.data.sampler``.
        **common: the settings of ``TaskDataModule`` (batch sizes, workers, splits, caps, cache_dir).
    """

    run_settings: ClassVar[tuple[str, ...]] = ("tokenizer", "max_length")

    def __init__(self, tokenizer: str, max_length: int = 128, group_by_length: bool = False, **common: Any) -> None:
        super().__init__(**common)
        if int(max_length) < 1:
            raise UserError(f"data.max_length must be a positive integer, got {max_length}")
        self.tokenizer = None

    # ---- what a text task supplies
    def source_identity(self) -> dict[str, Any]:
        """What identifies the raw data (names; files by path, size and mtime)."""
        raise NotImplementedError

    def cache_settings(self) -> dict[str, Any]:
        """The task's settings that change the tokenized result (columns, labels, split rules)."""
        raise NotImplementedError

    # ---- the text layer
    @property
    def processor(self) -> Any:
        """The tokenizer (``TaskHooks.connect`` hands it to the module; ``export.py`` saves it)."""
        return self.load_tokenizer()

    def load_tokenizer(self) -> Any:
        """The tokenizer, loaded once (the packaged model's hashes are checked then)."""
        self.tokenizer = self.tokenizer or load_tokenizer(self.hparams.tokenizer)
        return self.tokenizer

    def check_settings(self) -> None:
        """``max_length`` fits the tokenizer."""
        check_max_length(self.hparams.max_length, self.load_tokenizer())

    def check_network(self, config: Any) -> str:
        """``max_length`` within the tokenizer's limit or else the model's positions; the preflight's summary."""
        from finetune.hf.checks import check_positions

        max_length = self.hparams.max_length
        limit = check_max_length(max_length, self.load_tokenizer()) or check_positions(max_length, config)
        return f"max_length {max_length} of {limit or 'unlimited'} tokens"

    def cache_key(self) -> str:
        """The tokenized cache's key for this source, these settings and this tokenizer."""
        return cache_key(self.source_identity(), self.load_tokenizer(), self.cache_settings())

    def batch_sampler(self, train: Any, global_batch: int) -> Any:
        """Length-grouped batches with ``group_by_length`` (less padding), else the base's seeded shuffle."""
        if not self.hparams.group_by_length:
            return super().batch_sampler(train, global_batch)
        from finetune.data.sampler import LengthGroupedBatchSampler

        lengths = [len(ids) for ids in train["input_ids"]]
        return LengthGroupedBatchSampler(lengths, global_batch, self.hparams.seed)

    def save_processor(self, folder: Any) -> None:
        """The tokenizer, with ``model_max_length`` set to ``max_length``: the pipeline truncates as training did."""
        tokenizer = self.load_tokenizer()
        tokenizer.model_max_length = int(self.hparams.max_length)
        tokenizer.save_pretrained(folder)

    def card_limits(self) -> list[str]:
        limit = self.hparams.max_length
        return [f"Text beyond {limit} tokens is cut off (the tokenizer's `model_max_length` is set to it)."]

    def predict_collator(self) -> Any:
        """Pads a list of ``prediction_features(...)["inputs"]`` into a batch."""
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(self.load_tokenizer())
