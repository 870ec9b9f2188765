"""Keep tokenized datasets on disk so a second run and every sweep job skip tokenization.

The key covers everything that changes the result: the source (files by path, size and mtime; hub name
and subset), the split and label settings, the tokenizer's vocabulary and rules, and ``max_length``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)
FORMAT_VERSION = 2  # bump when the cached layout or preprocessing changes


def tokenizer_identity(tokenizer: PreTrainedTokenizerBase) -> str:
    """A digest of the tokenizer's full definition (vocabulary, normaliser, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return f"{type(tokenizer).__name__}:{hashlib.sha256(text.encode()).hexdigest()}"


def cache_key(source: dict[str, Any], tokenizer: PreTrainedTokenizerBase, settings: dict[str, Any]) -> str:
    """A short hex key for one (source, tokenizer, settings) combination."""
    blob = json.dumps(
        {
            "v": FORMAT_VERSION,
            "source": source,
            "tokenizer": tokenizer_identity(tokenizer),
            "settings": settings,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_cached(cache_dir: str, key: str) -> tuple[DatasetDict, Any] | None:
    """The cached splits and label description, or None when absent or unreadable."""
    from datasets import load_from_disk

    folder = Path(cache_dir) / "tokenized" / key
    if not (folder / "labels.json").is_file():
        return None
    try:
        labels = json.loads((folder / "labels.json").read_text())
        return load_from_disk(str(folder / "data")), labels
    except (OSError, ValueError) as error:
        log.warning("ignoring unreadable tokenized cache %s: %s", folder, error)
        return None


def save_cached(cache_dir: str, key: str, splits: DatasetDict, labels: Any) -> tuple[DatasetDict, Any]:
    """Write the splits under a temporary name and rename, so readers never see a half-written cache."""
    from datasets import load_from_disk

    root = Path(cache_dir) / "tokenized"
    final, partial = root / key, root / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    splits.save_to_disk(str(partial / "data"))
    (partial / "labels.json").write_text(json.dumps(labels))
    try:
        partial.rename(final)
    except OSError:  # another job wrote the same key first: theirs is identical
        shutil.rmtree(partial, ignore_errors=True)
    log.info("tokenized data cached in %s", final)
    return load_from_disk(str(final / "data")), json.loads((final / "labels.json").read_text())
