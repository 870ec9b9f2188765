"""Token classification (NER) data: words with BIO tags, aligned to sub-tokens (batching and caching:
``TextDataModule``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from finetune.data.sources import build_source
from finetune.data.text import TextDataModule
from finetune.errors import UserError
from finetune.trainer.instantiate import plain

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

log = logging.getLogger(__name__)
IGNORED = -100  # the label of sub-tokens and special tokens that the loss and the metrics skip


class TokenClassificationDataModule(TextDataModule):
    """Tagged sentences from a ``Source`` class named by ``source`` (``finetune.data.conll``): ``PackagedWnut16``
    (the packaged WNUT-16 tweets), ``ConllFiles`` (your files: ``train_file``, optional ``validation_file`` and
    ``test_file``) or ``HubTagged`` (a hub name whose splits have a words column and a tag column, conll2003).
    Splits the data lacks are carved from train, seeded.

    Words are aligned to sub-tokens with the tokenizer's ``word_ids()``: the first sub-token of a word carries
    its tag; the others are ignored, or with ``label_all_tokens`` carry the word's I- tag (B-X becomes I-X).

    Args:
        dataset: the hub name of ``HubTagged`` (a name for the summary otherwise).
        source: the ``Source`` class (dotted path); it takes the settings below that it declares.
        subset: hub configuration name.
        train_file: the training file of ``conll``; ``validation_file`` and ``test_file`` are optional.
        tag_column: the column of the tag in CoNLL lines (the token is column 0; -1 is the last).
        tokens_column: the words column of a hub dataset; ``tags_column`` its tag column.
        label_names: tag names in id order; None: ``O`` then the training tags, sorted.
        label_all_tokens: tag every sub-token of a word, not only the first.
        test_fraction: share of train held out as the test set (seeded) when there is no test split.
        main_metric: the metric that checkpointing, early stopping and sweeps follow (``val/<main_metric>``).
        **common: the loader, cache and split settings of ``TextDataModule`` (tokenizer, max_length ...).
    """

    def __init__(
        self,
        dataset: str | None = None,
        source: str = "finetune.data.conll.HubTagged",
        subset: str | None = None,
        train_file: str | None = None,
        validation_file: str | None = None,
        test_file: str | None = None,
        tag_column: int = -1,
        tokens_column: str = "tokens",
        tags_column: str = "ner_tags",
        label_names: list[str] | None = None,
        label_all_tokens: bool = False,
        test_fraction: float = 0.1,
        main_metric: str = "f1",
        **common: Any,
    ) -> None:
        label_names = plain(label_names)  # plain list: checkpoints load with torch.load(weights_only=True)
        super().__init__(**common)
        self.source = build_source(source, self.hparams)
        if not 0.0 < test_fraction < 1.0:
            raise UserError(f"data.test_fraction must be between 0 and 1, got {test_fraction}")
        self.label_names: list[str] = []

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {"label_names": self.label_names}

    @property
    def module_kwargs(self) -> dict[str, Any]:
        return {"test_sets": self.test_sets, "main_metric": self.hparams.main_metric}

    def read_labels(self, labels: Any) -> None:
        self.label_names = list(labels)

    def describe_labels(self) -> str:
        return f"{len(self.label_names)} tags {self.label_names}"

    def source_identity(self) -> dict[str, Any]:
        return self.source.identity()

    def cache_settings(self) -> dict[str, Any]:
        keys = ("tag_column", "tokens_column", "tags_column", "label_names", "label_all_tokens", "max_length")
        keys += ("val_fraction", "test_fraction", "seed", "max_train_samples", "max_eval_samples")
        return {k: self.hparams[k] for k in keys}

    def prediction_features(self, rows: list[dict[str, Any]], column: str | None = None) -> list[dict[str, Any]]:
        """Each row's text (split at whitespace) or list of words, tokenized as words like the training data;
        ``extra`` keeps the word of each token and each word's character span, for the entity offsets."""
        from finetune.data.prediction import check_columns, is_empty, words_and_spans

        hp = self.hparams
        column = column or (hp.tokens_column if rows and hp.tokens_column in rows[0] else "text")
        check_columns(rows, [column])
        kept = [i for i, row in enumerate(rows) if not is_empty(row.get(column))]
        words = {i: words_and_spans(rows[i][column]) for i in kept}
        encoded = self.load_tokenizer()(
            [words[i][0] for i in kept], is_split_into_words=True, truncation=True, max_length=hp.max_length
        ) if kept else None  # fmt: skip
        features: list[dict[str, Any]] = [{"error": f"empty text in '{column}'"} for _ in rows]
        for position, i in enumerate(kept):
            inputs = {key: values[position] for key, values in encoded.items()}
            extra = {"word_ids": encoded.word_ids(position), "spans": words[i][1], "text": words[i][2]}
            features[i] = {"inputs": inputs, "extra": extra}
        return features

    def collator(self, pad_to_multiple_of: int | None) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(self.load_tokenizer(), pad_to_multiple_of=pad_to_multiple_of)

    def tagged_splits(self) -> tuple[DatasetDict, list[str]]:
        """Train, validation and test sentences (words and tag names), split and capped, not tokenized; and the
        tag set (``label_names``, else ``O`` and the tags of the whole training split, before any cap)."""
        from finetune.data.preprocess import arrange_splits, cap_splits

        hp = self.hparams
        splits = arrange_splits(self.source.load(), "test", hp.val_fraction, hp.seed, test_fraction=hp.test_fraction)
        names = hp.label_names or ["O", *sorted({t for row in splits["train"]["tags"] for t in row} - {"O"})]
        splits = cap_splits(splits, hp.max_train_samples, hp.max_eval_samples)
        check_tags(splits, names)
        return splits, list(names)

    def inspect(self) -> tuple[dict[str, int], list[str]]:
        splits, names = self.tagged_splits()
        return {split: len(data) for split, data in splits.items()}, names

    def build(self) -> tuple[DatasetDict, list[str]]:
        from datasets import DatasetDict

        splits, names = self.tagged_splits()
        return DatasetDict({s: self._tokenize(s, data, names) for s, data in splits.items()}), names

    def _tokenize(self, split: str, data: Dataset, names: list[str]) -> Dataset:
        tokenizer, hp = self.load_tokenizer(), self.hparams
        ids = {name: i for i, name in enumerate(names)}
        # B-X's continuation is I-X (when the tag set has it): the label for later sub-tokens of a word.
        inside = {i: ids.get(f"I-{name[2:]}", i) if name.startswith("B-") else i for name, i in ids.items()}
        truncated = 0

        def encode(batch: dict[str, list]) -> dict[str, list]:
            nonlocal truncated
            encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=hp.max_length)
            labels = []
            for row, tags in enumerate(batch["tags"]):
                words = encoded.word_ids(row)
                kept = [w for w in words if w is not None]
                truncated += (bool(kept) and kept[-1] < len(tags) - 1) or (not kept and bool(tags))
                labels.append(align(words, [ids[t] for t in tags], inside, hp.label_all_tokens))
            return {**encoded, "labels": labels}

        encoded = data.map(encode, batched=True, remove_columns=data.column_names)
        if truncated:
            log.warning(
                "%d of %d sentences in the %s split are longer than data.max_length=%d tokens and were truncated "
                "(their last words are neither trained on nor scored)",
                truncated, len(data), split, hp.max_length,
            )  # fmt: skip
        return encoded


def check_tags(splits: DatasetDict, known: list[str]) -> None:
    """Every tag of every split is in the tag set, or a ``UserError`` naming the split and the sentence's line."""
    for split, data in splits.items():
        for tags, line in zip(data["tags"], data["line"], strict=True):
            unknown = next((t for t in tags if t not in known), None)
            if unknown is not None:
                where = f" (the sentence at line {line})" if line else ""
                raise UserError(
                    f"tag '{unknown}' in the {split} split{where} is not in the training tag set {known}; "
                    "fix the tag, or list every tag in data.label_names"
                )


def align(word_ids: list[int | None], word_labels: list[int], inside: dict[int, int], label_all: bool) -> list[int]:
    """Sub-token labels: the word's label on its first sub-token; on the others ``IGNORED``, or (``label_all``)
    the word's I- label; ``IGNORED`` on special tokens."""
    labels, previous = [], None
    for word in word_ids:
        if word is None:
            labels.append(IGNORED)
        elif word != previous:
            labels.append(word_labels[word])
        else:
            labels.append(inside[word_labels[word]] if label_all else IGNORED)
        previous = word
    return labels
