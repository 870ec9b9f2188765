"""Pure steps between the raw dataset and tokenization: check columns, arrange and cap the splits."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError

if TYPE_CHECKING:
    from datasets import DatasetDict

log = logging.getLogger(__name__)


def check_columns(raw: DatasetDict, needed: list[str]) -> None:
    """Every split has the text and label columns, or a ``UserError`` lists the columns it does have."""
    if "train" not in raw:
        raise UserError(f"the dataset has no train split (it has {sorted(raw)})")
    for split, data in raw.items():
        missing = [c for c in needed if c not in data.column_names]
        if missing:
            raise UserError(
                f"column {missing[0]!r} not found in the {split} split; its columns are {data.column_names} "
                "(set data.text_column, data.text_pair_column and data.label_column to match)"
            )


def arrange_splits(
    raw: DatasetDict,
    test_split: str,
    val_fraction: float,
    seed: int,
    extra_test_splits: dict[str, str] | None = None,
    test_fraction: float | None = None,
) -> DatasetDict:
    """Return train, validation and test, plus each extra test set under its own name.

    The source's ``test_split`` becomes the test set. Validation is the source's own validation split unless
    that one is the test set or missing; then ``val_fraction`` of train is held out with ``seed``.
    Without any test split the test runs on validation, or with ``test_fraction`` on that share of train held
    out first (seeded). ``extra_test_splits`` maps names to source splits
    (MNLI: ``test_mismatched`` -> ``validation_mismatched``); each must exist.
    """
    from datasets import DatasetDict

    extra = dict(extra_test_splits or {})
    for name, source in extra.items():
        if name in ("train", "validation", "test"):
            raise UserError(f"data.extra_test_splits: '{name}' is taken; name extra test sets otherwise")
        if source not in raw:
            raise UserError(
                f"data.extra_test_splits: {name} reads split '{source}', which the data lacks (it has {sorted(raw)})"
            )
    train = raw["train"]
    test = raw.get(test_split)
    if test is None and test_fraction:
        held_out = train.train_test_split(test_size=test_fraction, seed=seed)
        train, test = held_out["train"], held_out["test"]
    validation = raw.get("validation") if test_split != "validation" else None
    if validation is None:
        held_out = train.train_test_split(test_size=val_fraction, seed=seed, shuffle=True)
        train, validation = held_out["train"], held_out["test"]
    if test is None:
        log.warning("the data has no '%s' split: testing on the validation split", test_split)
        test = validation
    if len(train) == 0 or len(validation) == 0:
        raise UserError(f"too little data: {len(train)} training and {len(validation)} validation examples")
    return DatasetDict(
        {"train": train, "validation": validation, "test": test, **{name: raw[src] for name, src in extra.items()}}
    )


def cap_splits(splits: DatasetDict, max_train: int | None, max_eval: int | None) -> DatasetDict:
    """Keep the first ``max_train`` training and ``max_eval`` examples of every other split (None keeps all)."""
    from datasets import DatasetDict

    def cap(data, limit: int | None):
        return data.select(range(min(limit, len(data)))) if limit is not None else data

    return DatasetDict(
        {split: cap(data, max_train if split == "train" else max_eval) for split, data in splits.items()}
    )


def check_max_length(max_length: int, tokenizer: Any) -> int | None:
    """``data.max_length`` within the tokenizer's limit; return that limit (None when the tokenizer sets none).

    Tokenizers without a limit report a huge ``model_max_length`` (1e30), hence the 100_000 cut-off.
    """
    special = tokenizer.num_special_tokens_to_add(pair=True) if hasattr(tokenizer, "num_special_tokens_to_add") else 0
    if max_length <= special:  # truncation would leave no room for a single word (a pair needs two)
        raise UserError(
            f"data.max_length={max_length} leaves no room for text: the tokenizer adds up to {special} special "
            f"tokens; use at least {special + 2} (typical: 128)"
        )
    limit = getattr(tokenizer, "model_max_length", None) or 0
    if not 0 < limit < 100_000:
        return None
    if max_length > limit:
        raise UserError(f"data.max_length={max_length} exceeds the model's limit of {limit} tokens")
    return limit
