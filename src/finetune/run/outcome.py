"""``metrics.json``, the one record of how a run ended: its status values, its one writer, its readers.

A finished fit writes the whole summary (``write_summary``); a run that fails or is interrupted adds its
status and reason (``record_outcome``) and keeps what a finished fit already wrote. Every write is atomic
(``finetune.atomic``). Torch-free: resume, sweeps and the report read it before torch loads.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Any

from finetune import atomic

log = logging.getLogger(__name__)

SUMMARY_FILE = "metrics.json"
IDENTITY_FILE = "run_identity.json"
COMPLETED, INTERRUPTED, FAILED = "completed", "interrupted", "failed"


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write the run's summary (status, stop reason, metrics ...) as its ``metrics.json``."""
    atomic.write_json(run_dir / SUMMARY_FILE, summary)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``metrics.json``, or None when it is missing or unreadable."""
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def summary_damaged(run_dir: Path) -> bool:
    """``metrics.json`` is there but cannot be read (cut by a full disk, edited by hand): how the run ended is
    unknown, so it is neither taken over as unfinished nor used as finished."""
    return (run_dir / SUMMARY_FILE).exists() and read_summary(run_dir) is None


def read_status(run_dir: Path) -> str | None:
    """The run's status, or None when it was killed before writing one."""
    return (read_summary(run_dir) or {}).get("status")


def earlier_metrics(run_dir: Path) -> dict[str, float]:
    """The metrics an earlier leg of this run recorded (none for a new run)."""
    metrics = (read_summary(run_dir) or {}).get("metrics")
    return dict(metrics) if isinstance(metrics, dict) else {}


def holds_run(folder: Path) -> bool:
    """True when ``folder`` already holds a run (a summary, an identity or checkpoints), not just Hydra's files."""
    return any((folder / name).exists() for name in (SUMMARY_FILE, IDENTITY_FILE, "checkpoints"))


def record_outcome(run_dir: Path, status: str, error: BaseException, rank_zero: bool = True, rank: str = "") -> None:
    """Add ``status`` and the error's whole message (on one line) to ``metrics.json``; write ``traceback.txt``.

    Other DDP ranks (``rank_zero`` False) leave only ``traceback.<rank>.txt``. When the disk is full the
    record is skipped with a warning: the earlier files stay intact, and the error itself says what happened.
    """
    from finetune.run.secrets import redact_argv_secrets  # a crash's message may quote a secret override

    # The whole message: a reason's later lines often say what is missing (e.g. which GPU or file).
    reason = redact_argv_secrets(" ".join(f"{type(error).__name__}: {error}".split()))
    text = redact_argv_secrets("".join(traceback.format_exception(error)))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not rank_zero:
            atomic.write_text(run_dir / f"traceback.{rank}.txt", text)
            return
        atomic.write_text(run_dir / "traceback.txt", text)
        summary = read_summary(run_dir) or {}  # keep what a finished fit already wrote
        summary.update({"status": status, "reason": reason})
        summary.setdefault("metrics", {})
        write_summary(run_dir, summary)
    except atomic.DiskFull as full:
        log.warning("could not record the outcome: %s", full)
