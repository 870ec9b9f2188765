"""What every task's ``prediction_features`` shares: the column check, empty texts, words with their offsets."""

from __future__ import annotations

import re
from typing import Any

from finetune.errors import UserError

WORD = re.compile(r"\S+")


def check_columns(rows: list[dict[str, Any]], columns: list[str], setting: str = "text_column") -> None:
    """Every column is in the input (its first row names them), or one line naming the columns there are."""
    present = list(rows[0]) if rows else []
    missing = [c for c in columns if c not in present]
    if rows and missing:
        raise UserError(
            f"the input has no column '{missing[0]}' (its columns: {present}); name the text with {setting}=<column>"
        )


def is_empty(value: Any) -> bool:
    """No text to predict from: missing, null, blank, or an empty list of words."""
    return value is None or (isinstance(value, (str, list)) and not "".join(map(str, value)).strip())


def words_and_spans(value: str | list[Any]) -> tuple[list[str], list[tuple[int, int]], str]:
    """A text's words (split at whitespace) with their character spans, and the text; a list of words is joined
    with single spaces, as ``transformers.pipeline(..., is_split_into_words=True)`` joins them."""
    if isinstance(value, list):
        words = [str(word) for word in value]
        spans, start = [], 0
        for word in words:
            spans.append((start, start + len(word)))
            start += len(word) + 1
        return words, spans, " ".join(words)
    text = str(value)
    matches = list(WORD.finditer(text))
    return [m.group() for m in matches], [m.span() for m in matches], text


def split_encoding(encoded: Any, count: int) -> list[dict[str, Any]]:
    """A batched tokenizer output as one dict per row."""
    return [{key: values[i] for key, values in encoded.items()} for i in range(count)]
