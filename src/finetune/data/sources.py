"""Load a raw ``DatasetDict`` from the packaged demo, local files, a local GLUE folder, or the Hugging Face Hub.

Split names follow the hub: ``train``, ``validation``, ``test``. Nothing here tokenizes.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from finetune.errors import UserError

if TYPE_CHECKING:
    from datasets import DatasetDict

DEMO = "finetune/demo"
DEMO_DIR = Path(__file__).parent / "demo"
FILE_FORMATS = {"csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet"}
GLUE_HUB_NAMES = ("nyu-mll/glue", "glue")

# Columns of the local GLUE files (as written by the GLUE download script), renamed to the hub's names.
# CoLA has no header row; MRPC's header starts with a byte-order mark and uses its own names.
GLUE_LOCAL_COLUMNS: dict[str, dict[str, str] | list[str]] = {
    "sst2": {"sentence": "sentence", "label": "label"},
    "cola": ["source", "label", "author_mark", "sentence"],
    "mrpc": {"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"},
    "stsb": {"sentence1": "sentence1", "sentence2": "sentence2", "score": "label"},
}
GLUE_FLOAT_LABELS = {"stsb"}


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
        if not path.is_file():
            raise UserError(
                f"data.{split}_file not found: {path} (check the path; relative paths start at {Path.cwd()})"
            )
        if path.stat().st_size == 0:
            raise UserError(f"data.{split}_file is empty: {path}")
    return found


def glue_files(data_dir: str) -> dict[str, Path]:
    """``train.tsv`` and ``dev.tsv`` of a local GLUE task folder (GLUE's test labels are hidden)."""
    folder = Path(data_dir)
    files = {"train": folder / "train.tsv", "validation": folder / "dev.tsv"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise UserError(f"data.data_dir {folder} is not a GLUE task folder: missing {', '.join(missing)}")
    return files


def load_files(files: dict[str, Path], file_format: str) -> DatasetDict:
    """Load local csv/json/jsonl/parquet files with the ``datasets`` builders."""
    from datasets import load_dataset

    try:
        return load_dataset(FILE_FORMATS[file_format], data_files={k: str(v) for k, v in files.items()})
    except UnicodeDecodeError as error:
        raise UserError(f"a data file is not valid UTF-8 text ({error.reason} at byte {error.start})") from error


def read_glue_tsv(path: Path, task: str) -> dict[str, list]:
    """Read one GLUE TSV: tab-separated with quoting off (sentences may start with a double quote)."""
    layout = GLUE_LOCAL_COLUMNS[task]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if isinstance(layout, list):
        header, body, keep = layout, rows, {name: name for name in layout}
    else:
        header, body, keep = [h.strip() for h in rows[0]], rows[1:], layout
    columns: dict[str, list] = {new: [] for new in keep.values()}
    index = {name: header.index(name) for name in keep}
    for line_number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise UserError(f"{path}:{line_number}: expected {len(header)} tab-separated fields, got {len(row)}")
        for old, new in keep.items():
            columns[new].append(row[index[old]])
    float_labels = task in GLUE_FLOAT_LABELS
    columns["label"] = [float(v) if float_labels else int(v) for v in columns["label"]]
    return columns


def load_glue_dir(data_dir: str, task: str) -> DatasetDict:
    """A local GLUE task folder as a ``DatasetDict`` with the hub's column names."""
    from datasets import Dataset, DatasetDict

    if task not in GLUE_LOCAL_COLUMNS:
        raise UserError(f"no local reader for GLUE task '{task}': known ones are {sorted(GLUE_LOCAL_COLUMNS)}")
    files = glue_files(data_dir)
    return DatasetDict({split: Dataset.from_dict(read_glue_tsv(p, task)) for split, p in files.items()})


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
