"""Faults through the real command line: Ctrl-C in a multirun, a full disk, a damaged tokenized cache, a
checkpoint whose bytes changed. Each ends with a clear record and every earlier file intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_atomic import small_disk  # noqa: F401  (fixture)
from tests.test_checkpoint_integrity import flip_byte
from tests.test_cli import FAST_CLI

SIGNALS = "+callbacks.signal_at_step._target_=tests.helpers.signals.SignalAtStep"
SHORT = [*FAST_CLI, "logger=csv", "data.max_train_samples=64", "data.batch_size=16", "trainer.max_epochs=2"]


def run(*args: str, log_dir: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "train.py", *args, f"paths.log_dir={log_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env,
    )  # fmt: skip


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_ctrl_c_in_a_multirun_records_the_job_and_writes_the_report(tmp_path: Path) -> None:
    ctrl_c = {"FINETUNE_TEST_SIGNAL": "SIGINT", "FINETUNE_TEST_SIGNAL_AT_STEP": "2"}
    result = run("-m", *SHORT, SIGNALS, "seed=1,2,3", "task_name=sweep", log_dir=tmp_path, env=ctrl_c)
    assert result.returncode == 128 + signal.SIGINT, result.stderr[-3000:]
    (sweep,) = (tmp_path / "sweep" / "multiruns").iterdir()
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0"]  # Ctrl-C ends the sweep: the later jobs never start
    assert summary(sweep / "0")["status"] == "interrupted"
    rows = (sweep / "summary.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and "interrupted" in rows[1]  # the report of what ran
    assert "multirun interrupted: 1 of 1 jobs did not complete" in result.stderr + result.stdout


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_no_half_file(small_disk, tmp_path: Path) -> None:  # noqa: F811
    if small_disk is None:
        pytest.skip("cannot mount a small tmpfs here; tests/test_atomic.py simulates the full disk instead")
    cache = tmp_path / "cache"  # the tokenized data fits elsewhere; the 1 MiB disk holds the run's small files
    result = run(*SHORT, f"paths.cache_dir={cache}", "task_name=full", log_dir=small_disk)
    assert result.returncode == 2, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: disk full: could not write ") and " MiB needed, " in line, line
    assert "Traceback" not in result.stderr
    (run_dir,) = (small_disk / "full" / "runs").iterdir()
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]  # no half file under any name
    for checkpoint in (run_dir / "checkpoints").glob("*.ckpt"):  # what was written is whole
        from finetune.trainer.checkpoints import read_checkpoint

        assert read_checkpoint(checkpoint)["state_dict"]


@pytest.mark.slow
def test_a_damaged_tokenized_cache_is_replaced_and_the_run_completes(tmp_path: Path) -> None:
    first = run(*SHORT, "debug=limit", log_dir=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    (cached,) = (tmp_path / ".cache" / "tokenized").iterdir()
    arrow = sorted(cached.rglob("*.arrow"))[0]
    arrow.write_bytes(arrow.read_bytes()[:100])  # cut short, as a full disk or a killed copy leaves it
    second = run(*SHORT, "debug=limit", "resume=false", log_dir=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"tokenized cache {cached} is damaged" in second.stderr + second.stdout
    third = run(*SHORT, "debug=limit", "resume=false", log_dir=tmp_path)  # the replaced cache is whole
    assert third.returncode == 0 and "is damaged" not in third.stderr + third.stdout


@pytest.mark.slow
def test_a_flipped_byte_checkpoint_is_skipped_at_resume(tmp_path: Path) -> None:
    command = [*SHORT, SIGNALS, "callbacks.last_checkpoint.every_n_train_steps=2", "task_name=flip"]
    killed = run(*command, log_dir=tmp_path, env={"FINETUNE_TEST_SIGNAL_AT_STEP": "5"})
    assert killed.returncode == -signal.SIGKILL
    (run_dir,) = (tmp_path / "flip" / "runs").iterdir()
    newest = run_dir / "checkpoints" / "last.ckpt"
    flip_byte(newest)
    again = run(*command, log_dir=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "last.ckpt is corrupt: its SHA-256 differs" in again.stderr + again.stdout
    resumed = summary(run_dir)
    assert resumed["status"] == "completed" and not resumed["resumed_from"].endswith("/last.ckpt")
