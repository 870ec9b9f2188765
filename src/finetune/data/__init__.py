"""Data: the shared base (``HFDataModule``: tokenizer, cache, loaders) and one data module per task."""

from finetune.data.text_classification import TextClassificationDataModule
from finetune.data.token_classification import TokenClassificationDataModule

__all__ = ["TextClassificationDataModule", "TokenClassificationDataModule"]
