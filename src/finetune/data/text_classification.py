"""Text classification and regression data: single texts or sentence pairs, class names or scores."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from finetune.data import sources
from finetune.data.labels import check_no_missing, check_num_labels
from finetune.data.preprocess import arrange_splits, cap_splits, check_columns
from finetune.data.text import TextDataModule
from finetune.trainer.instantiate import plain

if TYPE_CHECKING:
    from datasets import DatasetDict

    from finetune.data.labels import LabelSpace

log = logging.getLogger(__name__)


class TextClassificationDataModule(TextDataModule):
    """Loads raw text, encodes labels and tokenizes (batching and caching: ``TextDataModule``).

    Where the data comes from is a ``finetune.data.sources.Source`` class named by ``source``: ``DemoReviews``
    (the packaged reviews), ``LocalFiles`` (``dataset`` is the format, ``csv``, ``json``, ``jsonl`` or
    ``parquet``, with ``train_file`` and optional ``validation_file`` and ``test_file``), ``GlueTask``
    (``nyu-mll/glue`` with ``subset``, or a local GLUE folder in ``data_dir``) or ``HubDataset``.

    Args:
        dataset: the hub name, or the file format of ``LocalFiles``.
        source: the ``Source`` class (dotted path); it takes the settings below that it declares.
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
        **common: the loader, cache and split settings of ``TextDataModule`` (tokenizer, max_length,
            batch_size ...).
    """

    def __init__(
        self,
        dataset: str,
        source: str = "finetune.data.sources.HubDataset",
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
        **common: Any,
    ) -> None:
        # Plain lists and dicts, not Hydra's containers: checkpoints must load with torch.load(weights_only=True).
        label_names, metrics, extra_test_splits = plain(label_names), plain(metrics), plain(extra_test_splits)
        super().__init__(**common)
        self.source = sources.build_source(source, self.hparams)
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

    def read_labels(self, labels: Any) -> None:
        self.label_names, self.problem_type = labels
        check_num_labels(self.hparams.num_labels, self.label_names)

    def inspect(self) -> tuple[dict[str, int], tuple[list[str], str]]:
        splits, space = self.labelled_splits()
        return {split: len(data) for split, data in splits.items()}, (space.names, space.problem_type)

    def describe_labels(self) -> str:
        if self.problem_type == "regression":
            return f"scores in '{self.hparams.label_column}' (regression)"
        return f"classes {self.label_names}"

    def cache_settings(self) -> dict[str, Any]:
        keys = ("test_split", "text_column", "text_pair_column", "label_column", "label_names", "max_length")
        keys += ("val_fraction", "seed", "max_train_samples", "max_eval_samples")
        extra = {"extra_test_splits": dict(self.hparams.extra_test_splits or {})}
        return {**{k: self.hparams[k] for k in keys}, **extra}

    def source_identity(self) -> dict[str, Any]:
        return self.source.identity()

    @property
    def prediction_column(self) -> str:
        return self.hparams.text_column

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
        raw = self.source.load()
        check_columns(raw, [*self.text_columns, hp.label_column])
        for split, data in raw.items():  # rows as in the source, before splits are carved or shuffled
            check_no_missing(data[hp.label_column], split, hp.label_column)
        splits = arrange_splits(raw, hp.test_split, hp.val_fraction, hp.seed, hp.extra_test_splits)
        splits = cap_splits(splits, hp.max_train_samples, hp.max_eval_samples)
        space = infer_label_space(splits, hp.label_column, hp.label_names)
        return encode_labels(splits, hp.label_column, space), space

    def build(self) -> tuple[DatasetDict, tuple[list[str], str]]:
        splits, space = self.labelled_splits()
        return self._tokenize(splits, self.text_columns), (space.names, space.problem_type)

    def _tokenize(self, splits: DatasetDict, text_columns: list[str]) -> DatasetDict:
        tokenizer, max_length = self.load_tokenizer(), self.hparams.max_length

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

    def prediction_features(self, rows: list[dict[str, Any]], column: str | None = None) -> list[dict[str, Any]]:
        from finetune.data.prediction import check_columns, is_empty, split_encoding

        hp = self.hparams
        columns = [column or hp.text_column, *([hp.text_pair_column] if hp.text_pair_column else [])]
        check_columns(rows, columns)
        empty = {i: c for i, row in enumerate(rows) for c in reversed(columns) if is_empty(row.get(c))}
        kept = [i for i in range(len(rows)) if i not in empty]
        texts = [[str(rows[i][c]) for i in kept] for c in columns]
        encoded = self.load_tokenizer()(*texts, truncation=True, max_length=hp.max_length) if kept else {}
        encoded_rows = dict(zip(kept, split_encoding(encoded, len(kept)), strict=True))
        return [
            {"inputs": encoded_rows[i], "extra": {}} if i in encoded_rows else {"error": f"empty text in '{empty[i]}'"}
            for i in range(len(rows))
        ]

    def collator(self, pad_to_multiple_of: int | None) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(self.load_tokenizer(), pad_to_multiple_of=pad_to_multiple_of)
