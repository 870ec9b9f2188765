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

from finetune import atomic

if TYPE_CHECKING:
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)
FORMAT_VERSION = 3  # bump when the cached layout or preprocessing changes


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
    """The cached splits and label description, or None when absent; a damaged cache (a file missing, cut
    short or changed since it was written) is reported and None returned, so it is rebuilt and replaced."""
    from datasets import load_from_disk

    folder = Path(cache_dir) / "tokenized" / key
    if not folder.exists():
        return None
    try:
        damage = _damage(folder)
        if damage is None:
            return load_from_disk(str(folder / "data")), json.loads((folder / "labels.json").read_text())
    except (OSError, ValueError) as error:  # pyarrow's errors are ValueErrors
        damage = str(error).splitlines()[0] if str(error) else type(error).__name__
    log.warning("tokenized cache %s is damaged (%s): tokenizing again and replacing it", folder, damage)
    return None


def save_cached(cache_dir: str, key: str, splits: DatasetDict, labels: Any) -> tuple[DatasetDict, Any]:
    """Write the splits under a temporary name with a manifest of every file's size and SHA-256, then rename
    over any damaged folder of that key, so readers never see a half-written or mixed cache."""
    from datasets import load_from_disk

    root = Path(cache_dir) / "tokenized"
    final, partial = root / key, root / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        splits.save_to_disk(str(partial / "data"))
        atomic.write_text(partial / "labels.json", json.dumps(labels))
        atomic.write_json(partial / MANIFEST, _manifest(partial))
        if _damage(final) is not None:  # absent or damaged; an intact one is another job's identical result
            atomic.replace_folder(partial, final)
    except OSError as error:
        if atomic.is_disk_full(error):
            raise atomic.disk_full(partial / "data", atomic.folder_bytes(partial)) from None
        raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("tokenized data cached in %s", final)
    return load_from_disk(str(final / "data")), json.loads((final / "labels.json").read_text())


MANIFEST = "manifest.json"


def _manifest(folder: Path) -> dict[str, list]:
    """Size and SHA-256 of every file in the cache folder (the manifest itself aside)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {str(p.relative_to(folder)): [p.stat().st_size, atomic.file_digest(p)] for p in files}


def _damage(folder: Path) -> str | None:
    """What is wrong with a cache folder (``missing``, a file that differs from the manifest), or None."""
    try:
        recorded = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return "missing" if not folder.exists() else f"no readable {MANIFEST}"
    for name, (size, digest) in recorded.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size or atomic.file_digest(path) != digest:
            return f"{name} changed since it was written"
    return None
