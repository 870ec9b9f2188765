"""A refused ``eval.py``, ``predict.py`` or ``export.py`` leaves one line, not a folder.

Hydra makes the command's dir before the command can check anything, so every refusal used to leave a tree
(``.hydra/``, a log, a failure record) under ``outputs/``: 44 eval dirs after one afternoon, 33 of them failed. A
refused command's dir is removed once it holds nothing but what the refusal left, and one JSON line (time, command
with secrets masked, the error) is appended to ``refused.jsonl`` beside it. Torch-free.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from finetune.errors import Refused

RECORD_FILE = "refused.jsonl"
# What a refusal leaves in the command's dir: Hydra's files, logs, the failure record of train.py's path.
LEFT_BY_REFUSAL = frozenset({".hydra", "metrics.json", "traceback.txt", "config_tree.log"})


@contextmanager
def one_record_when_refused(output_dir: Path) -> Iterator[None]:
    """Around a command: when it is refused (exit 2), fold its dir into one line of ``refused.jsonl``."""
    try:
        yield
    except Refused as refused:
        fold_into_record(output_dir, refused.line)
        raise


def fold_into_record(output_dir: Path, line: str) -> Path | None:
    """Append the refusal to ``<parent>/refused.jsonl`` and remove ``output_dir``, unless it holds anything a
    refusal does not leave (a result, someone's files); return the record file, or None when the dir stays."""
    from finetune.run.secrets import redact_argv_secrets

    if not output_dir.is_dir() or not all(_left_by_refusal(path) for path in output_dir.iterdir()):
        return None
    record = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": redact_argv_secrets(" ".join(sys.argv)),
        "error": redact_argv_secrets(line),
    }
    record_file = output_dir.parent / RECORD_FILE
    with record_file.open("a", encoding="utf-8") as handle:  # one short appended line: whole even when shared
        handle.write(json.dumps(record) + "\n")
    shutil.rmtree(output_dir, ignore_errors=True)
    return record_file


def _left_by_refusal(path: Path) -> bool:
    return path.name in LEFT_BY_REFUSAL or (path.is_file() and path.suffix == ".log")
