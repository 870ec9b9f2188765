"""Data: the modality-free base (``TaskDataModule``: splits, cache, loaders, preflight), the text layer
(``TextDataModule``: tokenizer, tokenized cache, length grouping) and one data module per task."""

from finetune.data.text_classification import TextClassificationDataModule
from finetune.data.token_classification import TokenClassificationDataModule

__all__ = ["TextClassificationDataModule", "TokenClassificationDataModule"]
