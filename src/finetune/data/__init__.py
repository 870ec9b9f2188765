"""Data: load raw text datasets, encode labels, tokenize once, and batch with dynamic padding."""

from finetune.data.datamodule import TextClassificationDataModule

__all__ = ["TextClassificationDataModule"]
