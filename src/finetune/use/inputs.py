"""``predict.py``'s input and output files: csv, jsonl, json, parquet or txt rows in; JSON lines out, in input order.

Torch-free: every mistake in the files is found before a model loads.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from finetune.errors import UserError

FORMATS = ("csv", "jsonl", "json", "parquet", "txt")


def input_format(path: str, given: str | None) -> str:
    """The format: ``input_format`` when given, else the file's suffix (``-``, stdin: jsonl unless it is text)."""
    if given:
        if given not in FORMATS:
            raise UserError(f"input_format={given} is not one of {list(FORMATS)}")
        return given
    if path == "-":
        return "stdin"
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "tsv":
        return "csv"
    if suffix not in FORMATS:
        raise UserError(
            f"input={path}: cannot tell its format from '.{suffix}'; pass input_format=<{'|'.join(FORMATS)}>"
        )
    return suffix


def read_rows(path: str, given_format: str | None, text_column: str) -> list[dict[str, Any]]:
    """The input's rows as dicts, in file order; a txt line (or a stdin line that is not JSON) is
    ``{text_column: line}``.

    Raises:
        UserError: the file is missing, empty, or a line or row cannot be read (naming the line).
    """
    kind = input_format(path, given_format)
    if path == "-":
        text = sys.stdin.read()
        kind = kind if kind != "stdin" else "jsonl" if text.lstrip().startswith("{") else "txt"
        source = "stdin"
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            raise UserError(f"input={path} does not exist; give a {'/'.join(FORMATS)} file, or - for stdin")
        if kind == "parquet":
            return _parquet_rows(file)
        text, source = _read_text(file), str(file)
    rows = _parse(text, kind, source, text_column)
    if not rows:
        raise UserError(f"input={path} holds no rows")
    return rows


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"input={file} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None


def _parse(text: str, kind: str, source: str, text_column: str) -> list[dict[str, Any]]:
    if kind == "txt":
        return [{text_column: line} for line in text.splitlines() if line.strip()]
    if kind == "csv":
        return _csv_rows(text, source)
    if kind == "json":
        try:
            rows = json.loads(text)
        except ValueError as error:
            raise UserError(f"{source}: not valid JSON ({error})") from None
        rows = rows.get("data", rows) if isinstance(rows, dict) else rows
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(f"{source}: a .json input must be a list of objects (one per row)")
        return rows
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise UserError(f"{source}:{number}: not a JSON object ({error.args[0][:80]})") from None
        if not isinstance(row, dict):
            raise UserError(f"{source}:{number}: each line must be a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _csv_rows(text: str, source: str) -> list[dict[str, Any]]:
    """The rows of a csv or tsv file; a row with more or fewer fields than the header is refused, naming its line
    (csv would silently cut or pad it)."""
    reader = csv.DictReader(io.StringIO(text), dialect="excel-tab" if source.endswith(".tsv") else "excel")
    rows = []
    for row in reader:
        if None in row or None in row.values():
            fields = len(row) - (None in row) + len(row.get(None) or [])
            fields -= sum(value is None for key, value in row.items() if key is not None)
            raise UserError(f"{source}:{reader.line_num}: {fields} fields where the header has "
                            f"{len(reader.fieldnames or [])}; quote values that hold the separator")  # fmt: skip
        rows.append(dict(row))
    return rows


def _parquet_rows(file: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(file).to_pylist()
    except Exception as error:  # pyarrow's errors share no base class worth naming
        raise UserError(f"input={file} is not a readable parquet file ({str(error).splitlines()[0][:120]})") from None


def check_output(path: Path, own_dir: Path, setting: str = "output") -> Path:
    """``path`` (as given) resolved, after checking that it does not exist (a finished result is never
    overwritten), is no link (even a dangling one: writing would follow it), lies in no run dir but this
    command's own ``own_dir``, and that its folder is writable."""
    from finetune.run.preflight import unwritable_reason

    if path.is_symlink():
        raise UserError(f"{setting}={path} is a symbolic link; give a new path (a link would be written through)")
    path = path.resolve()
    if path.exists():
        raise UserError(f"{setting}={path} already exists; give a new path, or delete it first")
    run = enclosing_run(path, own_dir)
    if run is not None:
        raise UserError(f"{setting}={path} is inside the run {run}, which this command did not create (a command "
                        "only reads the runs it is pointed at); give a path outside it")  # fmt: skip
    reason = unwritable_reason(path.parent)
    if reason:
        raise UserError(f"{setting}={path} cannot be written ({reason}); give a path in a writable folder")
    return path


@contextmanager
def claimed_output(path: Path, own_dir: Path, setting: str = "output") -> Iterator[Path]:
    """``check_output``, then hold the output's name while the command runs: a second command writing the same
    path is refused at once in one line (not after both ran, when one result would silently replace the other),
    and what a dead command left there (temporary files, partial folders) is removed."""
    from finetune import atomic
    from finetune.run.lock import RunLock

    resolved = check_output(path, own_dir, setting)
    busy = f"{setting}={resolved} is being written by {{who}}: wait for it to finish, or give another path"
    lock = RunLock(resolved.parent, f".{resolved.name}.lock", busy=busy)
    try:
        atomic.remove_dead_leftovers(resolved)
        if resolved.exists():  # written by a command that finished between the check and the lock
            raise UserError(f"{setting}={resolved} already exists; give a new path, or delete it first")
        yield resolved
    finally:
        lock.release()


def enclosing_run(path: Path, own_dir: Path) -> Path | None:
    """The run dir (a folder with ``.hydra/config.yaml``) that ``path`` lies in, unless it is ``own_dir``."""
    own = own_dir.resolve()
    for folder in path.parents:
        if folder == own:
            return None
        if (folder / ".hydra" / "config.yaml").is_file():
            return folder
    return None


def row_id(row: dict[str, Any], number: int, id_column: str) -> Any:
    """The row's own id (``id_column``), else its number in the input (from 0)."""
    return row.get(id_column, number)
