"""Say where a data file is broken: the file, the line and what is wrong there, instead of a parser's traceback.

``datasets`` reports a bad CSV row or JSON line without the file or the line; these re-read the file with the
standard library's parsers to find the first bad line. Called only after loading failed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from finetune.errors import UserError, causes


def unreadable(files: dict[str, Path], file_format: str, error: BaseException) -> UserError:
    """The first line that does not parse in ``files`` as ``file_format``, or the parser's own first line."""
    for split, path in files.items():
        if file_format == "csv" and _data_lines(path) <= 1:  # a header and nothing else
            return empty_split(split, path)
        where = _first_bad_line(path, file_format)
        if where:
            return UserError(f"data.{split}_file {path}:{where}")
    *_, cause = causes(error)  # the parser's own error, under the wrappers of datasets
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    names = ", ".join(f"{p}" for p in files.values())
    return UserError(f"could not read {names} as {file_format} ({first}); check that data={file_format} fits the file")


def empty_split(split: str, path: Path) -> UserError:
    """A file with a header (or nothing but blank lines) and no examples."""
    return UserError(f"data.{split}_file holds no examples (a header but no rows?): {path}")


def _data_lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except (OSError, UnicodeDecodeError):
        return 2  # unknown: let the parser's message speak


def _first_bad_line(path: Path, file_format: str) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if file_format == "csv":
        return _bad_csv_row(text)
    if file_format in ("json", "jsonl"):
        return _bad_json_line(text)
    return None


def _bad_csv_row(text: str) -> str | None:
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if not header:
        return None
    for number, row in enumerate(rows, start=2):
        if row and len(row) != len(header):
            return (f"{number}: {len(row)} fields where the header has {len(header)} ({', '.join(header)}); "
                    "quote a text that holds commas")  # fmt: skip
    return None


def _bad_json_line(text: str) -> str | None:
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")) and not _is_json_lines(text):
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            return f"{error.lineno}: not valid JSON ({error.msg} at column {error.colno})"
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            return f"{number}: not valid JSON ({error.msg} at column {error.colno}); one JSON object per line"
        if not isinstance(row, dict):
            return f"{number}: a JSON {type(row).__name__}, where one object per line is expected"
    return None


def _is_json_lines(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) > 1 and all(line.lstrip().startswith("{") for line in lines)
