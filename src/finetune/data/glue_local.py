"""Read a local GLUE task folder (the layout of the GLUE download script) with the hub's splits and columns.

Layouts follow the files the GLUE download script writes and the readers that consume them (Hugging Face
``datasets``' former ``glue.py`` loader, BERT's ``run_classifier.py`` processors):

- CoLA: no header; ``source, label, author mark, sentence``.
- SST-2: ``sentence label``.
- MRPC: ``Quality #1 ID #2 ID #1 String #2 String``, the header starting with a byte-order mark.
- QQP: ``id qid1 qid2 question1 question2 is_duplicate``.
- STS-B: ``index genre filename year old_index source1 source2 sentence1 sentence2 score`` (float scores).
- MNLI: ``index promptID pairID genre sentence1_binary_parse sentence2_binary_parse sentence1_parse
  sentence2_parse sentence1 sentence2 label1 [label2..label5] gold_label``; train has only ``label1``, the
  dev files five annotator labels. Files ``train.tsv``, ``dev_matched.tsv``, ``dev_mismatched.tsv``.
- QNLI: ``index question sentence label``; RTE and WNLI: ``index sentence1 sentence2 label``.

Columns are found by header name and renamed to the hub's (``nyu-mll/glue``): MNLI's ``sentence1`` and
``sentence2`` become ``premise`` and ``hypothesis`` as on the hub. Labels stay as written: strings for MNLI,
QNLI and RTE (the configs list ``label_names`` in the hub's order, so class ids match the hub), integers for
CoLA, SST-2, MRPC, QQP and WNLI, floats for STS-B. Splits are the hub's: ``train``, ``validation`` (``dev.tsv``),
and for MNLI ``validation_matched`` and ``validation_mismatched``.

Every row must have as many fields as the header, or a ``UserError`` names the file and line. QQP is the one
exception: GLUE's original ``QQP.zip`` has a few rows with missing fields, which both the ``datasets`` loader
("filter out corrupted rows") and BERT's ``QqpProcessor`` skip; so rows of QQP with missing fields or an
empty label are skipped here too, with a warning that counts them.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from finetune.errors import UserError

if TYPE_CHECKING:
    from datasets import DatasetDict

log = logging.getLogger(__name__)

# Per task: file column -> hub column (the label column becomes ``label``).
GLUE_LOCAL_COLUMNS: dict[str, dict[str, str]] = {
    "cola": {"sentence": "sentence", "label": "label"},
    "sst2": {"sentence": "sentence", "label": "label"},
    "mrpc": {"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"},
    "qqp": {"question1": "question1", "question2": "question2", "is_duplicate": "label"},
    "stsb": {"sentence1": "sentence1", "sentence2": "sentence2", "score": "label"},
    "mnli": {"sentence1": "premise", "sentence2": "hypothesis", "gold_label": "label"},
    "qnli": {"question": "question", "sentence": "sentence", "label": "label"},
    "rte": {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
    "wnli": {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
}
GLUE_HEADERLESS = {"cola": ["source", "label", "author_mark", "sentence"]}
GLUE_LABEL_TYPES: dict[str, type] = {"stsb": float, "mnli": str, "qnli": str, "rte": str}  # the rest: int
GLUE_SKIPS_SHORT_ROWS = {"qqp"}
GLUE_SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv"}
MNLI_SPLIT_FILES = {
    "train": "train.tsv",
    "validation_matched": "dev_matched.tsv",
    "validation_mismatched": "dev_mismatched.tsv",
}


def glue_files(data_dir: str, task: str | None = None) -> dict[str, Path]:
    """The labelled files of a local GLUE task folder by hub split (GLUE's test labels are hidden).

    MNLI's layout is used for ``task="mnli"``, or without a task when the folder has ``dev_matched.tsv``.
    """
    folder = Path(data_dir)
    mnli = task == "mnli" if task else (folder / MNLI_SPLIT_FILES["validation_matched"]).is_file()
    files = {split: folder / name for split, name in (MNLI_SPLIT_FILES if mnli else GLUE_SPLIT_FILES).items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise UserError(f"data.data_dir {folder} is not a GLUE task folder: missing {', '.join(missing)}")
    return files


def _label(value: str, kind: type, where: str) -> str | int | float:
    try:
        return kind(value)
    except ValueError:
        raise UserError(f"{where}: label {value!r} is not {'an integer' if kind is int else 'a number'}") from None


def read_glue_tsv(path: Path, task: str) -> dict[str, list]:
    """Read one GLUE TSV: tab-separated with quoting off (sentences may start with a double quote)."""
    if task not in GLUE_LOCAL_COLUMNS:
        raise UserError(f"no local reader for GLUE task '{task}': known ones are {sorted(GLUE_LOCAL_COLUMNS)}")
    keep, kind = GLUE_LOCAL_COLUMNS[task], GLUE_LABEL_TYPES.get(task, int)
    columns: dict[str, list] = {new: [] for new in keep.values()}
    skipped: list[int] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = GLUE_HEADERLESS.get(task) or [h.strip() for h in next(reader, [])]
            absent = [name for name in keep if name not in header]
            if absent:
                raise UserError(
                    f"{path}: no column {absent[0]!r} in the header {header}; is this the GLUE {task} folder?"
                )
            index = {name: header.index(name) for name in keep}
            label_at = next(index[old] for old, new in keep.items() if new == "label")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if not row:  # a blank line
                    continue
                if len(row) != len(header) or not row[label_at]:
                    if task in GLUE_SKIPS_SHORT_ROWS and len(row) <= len(header):
                        skipped.append(reader.line_num)
                        continue
                    if len(row) != len(header):
                        raise UserError(f"{where}: expected {len(header)} tab-separated fields, got {len(row)}")
                    raise UserError(f"{where}: the label field is empty")
                for old, new in keep.items():
                    columns[new].append(row[index[old]])
                columns["label"][-1] = _label(row[label_at], kind, where)
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not valid UTF-8 text ({error.reason} at byte {error.start})") from error
    if skipped:
        log.warning("%s: skipped %d malformed rows (fields missing), lines %s", path, len(skipped), skipped[:5])
    return columns


def load_glue_dir(data_dir: str, task: str | None) -> DatasetDict:
    """A local GLUE task folder as a ``DatasetDict`` with the hub's split and column names."""
    from datasets import Dataset, DatasetDict

    if task not in GLUE_LOCAL_COLUMNS:
        raise UserError(f"no local reader for GLUE task '{task}': known ones are {sorted(GLUE_LOCAL_COLUMNS)}")
    files = glue_files(data_dir, task)
    return DatasetDict({split: Dataset.from_dict(read_glue_tsv(p, task)) for split, p in files.items()})
