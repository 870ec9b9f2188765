"""The project's commands (train.py, eval.py, predict.py, export.py) in a subprocess, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT


def run_script(script: str, *args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python <script> <args>`` from the project root, offline, wandb silent; stdout and stderr captured."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    env.pop("WANDB_API_KEY", None)
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``result``, after asserting the command exited 0 (the end of its stderr in the message otherwise)."""
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a refused command, after asserting exit status 2 and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime: what a command that only reads must leave as is."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def drop_run(cfg: Any) -> None:
    """Delete a finished gate run's dir: a gate keeps its numbers, not its checkpoints (up to 800 MB a run)."""
    import shutil

    shutil.rmtree(cfg.paths.output_dir, ignore_errors=True)
