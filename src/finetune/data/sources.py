"""Where text examples come from: the packaged demo, local files, a GLUE task (local folder or hub), the hub.

Each source is a ``Source`` class that a data option names (``source: finetune.data.sources.LocalFiles``).

Split names follow the hub: ``train``, ``validation``, ``test`` (MNLI: ``validation_matched`` and
``validation_mismatched``). The local GLUE reader lives in ``finetune.data.glue_local``. Nothing here tokenizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.data.glue_local import GLUE_LOCAL_COLUMNS as GLUE_LOCAL_COLUMNS
from finetune.data.glue_local import glue_files as glue_files
from finetune.data.glue_local import load_glue_dir as load_glue_dir
from finetune.data.glue_local import read_glue_tsv as read_glue_tsv
from finetune.errors import UserError, caused_by

if TYPE_CHECKING:
    from datasets import DatasetDict

DEMO_DIR = Path(__file__).parent / "demo"
FILE_FORMATS = {"csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet"}
GLUE_HUB_NAMES = ("nyu-mll/glue", "glue")


def file_signature(paths: list[Path]) -> list[tuple[str, int, int]]:
    """What identifies local input files for caching: resolved path, size and modification time."""
    return [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def demo_files() -> dict[str, Path]:
    """The packaged demo reviews, one JSON-lines file per split."""
    return {split: DEMO_DIR / f"{split}.jsonl" for split in ("train", "validation", "test")}


def user_files(train_file: str | None, validation_file: str | None, test_file: str | None) -> dict[str, Path]:
    """The user's own files by split, checked to exist and be non-empty."""
    if not train_file:
        raise UserError("data.train_file is not set: give the path of your training file")
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    found = {split: Path(path) for split, path in files.items() if path}
    for split, path in found.items():
        if path.is_dir():
            raise UserError(f"data.{split}_file is a folder, not a file: {path} (give the path of the file inside)")
        if not path.is_file():
            raise UserError(
                f"data.{split}_file not found: {path} (check the path; relative paths start at {Path.cwd()})"
            )
        if path.stat().st_size == 0:
            raise UserError(f"data.{split}_file is empty: {path}")
        try:
            path.open("rb").close()
        except OSError as error:  # no permission, a broken disk ...
            raise UserError(f"data.{split}_file cannot be read: {path} ({error.strerror or error}); check its "
                            "permissions") from None  # fmt: skip
    return found


def load_files(files: dict[str, Path], file_format: str) -> DatasetDict:
    """Load local csv/json/jsonl/parquet files with the ``datasets`` builders."""
    from datasets import load_dataset

    from finetune.data.file_errors import empty_split, unreadable

    try:
        loaded = load_dataset(FILE_FORMATS[file_format], data_files={k: str(v) for k, v in files.items()})
    except Exception as error:  # datasets wraps the parser's error in its DatasetGenerationError, or a ValueError
        if caused_by(error, UnicodeDecodeError):
            raise _not_utf8(files) from error
        raise unreadable(files, file_format, error) from None
    for split, data in loaded.items():
        if len(data) == 0:
            raise empty_split(split, files[split])
    return loaded


def _not_utf8(files: dict[str, Path]) -> UserError:
    """Name the first file that is not UTF-8 text, and the byte where decoding fails."""
    for split, path in files.items():
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            return UserError(
                f"data.{split}_file is not UTF-8 text: {path} ({error.reason} at byte {error.start}); "
                "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
            )
    return UserError("a data file is not UTF-8 text; save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def load_hub(dataset: str, subset: str | None) -> DatasetDict:
    """A dataset from the Hugging Face Hub (or the local ``datasets`` cache when offline)."""
    from datasets import load_dataset

    try:
        return load_dataset(dataset, subset)
    except (ConnectionError, OSError, ValueError) as error:
        raise UserError(
            f"could not load dataset '{dataset}' ({subset}) from the Hugging Face Hub: {str(error).splitlines()[0]}; "
            "offline, use local files instead (e.g. data.data_dir=<GLUE folder> or data=csv data.train_file=...)"
        ) from error


class Source:
    """Where a task's raw examples come from; the data option names the class (``data.source``) and the data
    module hands it the settings it declares (its dataclass fields), so no data module branches on a name."""

    def files(self) -> dict[str, Path] | None:
        """The local files by split (they identify the data for the cache), or None for a hub dataset."""
        return None

    def load(self) -> Any:
        """The raw splits by name (a ``DatasetDict`` or a dict of ``Dataset``)."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What identifies the raw data: the class, its settings, and its files by path, size and mtime."""
        files = self.files()
        listed = {"files": file_signature(list(files.values()))} if files else {}
        return {"source": type(self).__name__, **{k: str(v) for k, v in vars(self).items()}, **listed}


def build_source(target: str, settings: Mapping[str, Any]) -> Source:
    """The ``Source`` class at ``target`` (a dotted path) with the settings it declares taken from ``settings``."""
    from hydra.utils import get_class

    try:
        source_class = get_class(target)
    except Exception:  # Hydra raises ImportError or its own error for a bad path
        raise UserError(f"data.source={target} is not a class; use one of finetune.data.sources' or "
                        "finetune.data.conll's Source classes") from None  # fmt: skip
    names = [field.name for field in fields(source_class)]
    return source_class(**{name: settings[name] for name in names if name in settings})


@dataclass
class DemoReviews(Source):
    """The packaged demo reviews (``data=demo``)."""

    def files(self) -> dict[str, Path]:
        return demo_files()

    def load(self) -> DatasetDict:
        return load_files(self.files(), "jsonl")


@dataclass
class LocalFiles(Source):
    """Your csv, json, jsonl or parquet files (``data=csv data.train_file=...``); ``dataset`` is the format."""

    dataset: str
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None

    def __post_init__(self) -> None:
        if self.dataset not in FILE_FORMATS:
            raise UserError(f"data.dataset={self.dataset} is not a file format; use one of {list(FILE_FORMATS)}")

    def files(self) -> dict[str, Path]:
        return user_files(self.train_file, self.validation_file, self.test_file)

    def load(self) -> DatasetDict:
        return load_files(self.files(), self.dataset)


@dataclass
class GlueTask(Source):
    """A GLUE task: from a local GLUE folder (``data.data_dir``) when given, else from the hub."""

    dataset: str
    subset: str | None = None
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if self.data_dir and self.dataset not in GLUE_HUB_NAMES:
            raise UserError(f"data.data_dir reads local GLUE folders only; data.dataset is '{self.dataset}'")

    def files(self) -> dict[str, Path] | None:
        return glue_files(self.data_dir) if self.data_dir else None

    def load(self) -> DatasetDict:
        return load_glue_dir(self.data_dir, self.subset) if self.data_dir else load_hub(self.dataset, self.subset)


@dataclass
class HubDataset(Source):
    """Any text dataset on the Hugging Face Hub (``data.dataset=<name> data.subset=<config>``)."""

    dataset: str
    subset: str | None = None

    def load(self) -> DatasetDict:
        return load_hub(self.dataset, self.subset)
