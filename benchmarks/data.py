"""The benchmark's data: a seeded subset of SST-2 train and the whole dev set, written once as CSV for every variant.

Every variant reads the same two files, so they all train on the same sentences with the same labels; only how
each one batches and pads them differs (that is part of what is measured).
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2_DIR = ROOT.parent / "shared/data/glue/SST-2"
COLUMNS = ("sentence", "label")


def read_tsv(path: Path) -> list[tuple[str, int]]:
    """(sentence, label) rows of a GLUE SST-2 TSV; no quoting, since some sentences start with a quote."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header[:2] != list(COLUMNS):
            raise ValueError(f"{path}: expected columns {COLUMNS}, got {header}")
        return [(row[0], int(row[1])) for row in reader if row]


def write_csv(path: Path, rows: list[tuple[str, int]]) -> None:
    """``sentence,label`` CSV written with the csv module (quotes where the text needs them).

    An identical file is left untouched: the project keys its tokenized cache on the file's mtime.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    text = buffer.getvalue().encode("utf-8")
    if path.is_file() and path.read_bytes() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)


def read_csv(path: Path) -> tuple[list[str], list[int]]:
    """Texts and integer labels of a file that ``write_csv`` wrote."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def subset(rows: list[tuple[str, int]], count: int, seed: int) -> list[tuple[str, int]]:
    """The first ``count`` rows of a seeded shuffle (Python's own RNG: the same on every machine and version)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in order[:count]]


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare(
    work_dir: Path, sentences: int, seed: int, dev_sentences: int | None = None, source: Path = SST2_DIR
) -> dict[str, str]:
    """Write ``train.csv`` (``sentences`` rows) and ``dev.csv`` (all of dev, or its first ``dev_sentences``, for
    quick checks) under ``work_dir``; their paths and hashes, which the results record."""
    if not (source / "train.tsv").is_file():
        raise SystemExit(f"no SST-2 data at {source} (expected train.tsv and dev.tsv)")
    train_rows = read_tsv(source / "train.tsv")
    if not 0 < sentences <= len(train_rows):
        raise SystemExit(f"--sentences must be in 1..{len(train_rows)}, got {sentences}")
    dev_rows = read_tsv(source / "dev.tsv")[:dev_sentences]
    folder = work_dir / f"data_n{sentences}_seed{seed}"
    train, dev = folder / "train.csv", folder / f"dev{len(dev_rows)}.csv"
    write_csv(train, subset(train_rows, sentences, seed))
    write_csv(dev, dev_rows)
    return {"train": str(train), "dev": str(dev), "train_sha256": sha256_of(train), "dev_sha256": sha256_of(dev)}
