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


# A tiny run through the real command line: the random 2-layer model, one epoch, fp32, CSV only, no bars.
TINY = ["model=tiny_random", "trainer.max_epochs=1", "trainer.precision=32", "logger=csv"]
TINY += ["callbacks.progress_bar.refresh_rate=0", "trainer.enable_model_summary=false"]


def finished_run(base: Path) -> Path:
    """``train.py`` with ``TINY`` on the demo reviews in ``base/run``, finished: the run the after-training
    commands are pointed at."""
    succeeded(run_script("train.py", *TINY, f"paths.log_dir={base}", f"hydra.run.dir={base / 'run'}"))
    return base / "run"


def tree_hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes: a run a command must leave unchanged."""
    import hashlib

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
