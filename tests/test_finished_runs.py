"""Commands pointed at an existing run: a finished run is never changed, one live process trains in a run dir,
and a run that did what it was asked without a validation is completed. Real processes through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers.commands import tree_hashes
from tests.test_cli import FAST_CLI, one_line_error, run_cli

HELD = [
    *FAST_CLI,
    "logger=csv",
    "data.max_train_samples=128",
    "data.batch_size=16",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "callbacks.last_checkpoint.every_n_train_steps=3",
    "+callbacks.signal_at_step._target_=tests.helpers.signals.SignalAtStep",
    "+callbacks.wait_at_step._target_=tests.helpers.signals.WaitAtStep",
    "task_name=held",
]


def summary(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_commands_pointed_at_a_finished_run_leave_it_unchanged(tmp_path: Path) -> None:
    command = [*FAST_CLI, "logger=csv", "debug=limit", "task_name=done"]
    first = run_cli(*command, log_dir=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    (done,) = (tmp_path / "done" / "runs").iterdir()
    before, summary_before = tree_hashes(done), summary(done)
    bad = {"optimizer.lr=abc": "optimizer.lr must be a positive number", "data.batch_size=0": "data.batch_size"}
    for override, message in bad.items():
        # a larger budget, so the resume fits the run and the bad value is what is refused
        result = run_cli(*command, f"resume={done}", "trainer.max_epochs=3", override, log_dir=tmp_path)
        assert message in one_line_error(result)
        assert tree_hashes(done) == before, override
    for extra in ([f"hydra.run.dir={done}"], [f"hydra.run.dir={done}", "resume=false"]):  # a new run there
        result = run_cli(*command, *extra, log_dir=tmp_path)
        assert f"hydra.run.dir={done} already holds a run" in one_line_error(result)
        assert tree_hashes(done) == before, extra
    # The same command with resume= on purpose: its budget is the one the run completed, so it would train
    # nothing and only rewrite the run's record: refused before the claim, the run unchanged.
    same = run_cli(*command, f"resume={done}", log_dir=tmp_path)
    assert "this command's budget trains nothing more" in one_line_error(same)
    assert tree_hashes(done) == before
    # A larger budget continues it in place from its finished checkpoint, and it stays completed.
    again = run_cli(*command, f"resume={done}", "trainer.max_epochs=3", log_dir=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    continued = summary(done)
    assert continued["status"] == "completed" and continued["resumed_from"].startswith(str(done))
    assert {"test/acc", "val/acc", "val/acc_best"} <= set(continued["metrics"])
    assert continued["global_step"] > summary_before["global_step"]
    others = [summary(run)["status"] for run in (tmp_path / "done" / "runs").iterdir() if run != done]
    assert others == ["failed"] * 3  # each refused command recorded its failure in its own dir


@pytest.mark.slow
def test_a_run_shorter_than_one_epoch_is_completed(tmp_path: Path) -> None:
    result = run_cli(*FAST_CLI, "logger=csv", "trainer.max_steps=2", "task_name=short", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "short" / "runs").iterdir()
    assert summary(run)["status"] == "completed" and summary(run)["stop_reason"] == "max_steps"
    assert "optimized_metric val/acc_best has no value (no validation ran)" in result.stderr + result.stdout


def start(log_dir: Path, wait_dir: Path, wait_at: int | None = None, kill_at: int | None = None) -> subprocess.Popen:
    """``python train.py HELD`` in the background; its output goes to files (a full pipe would block it)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)}
    env["FINETUNE_TEST_WAIT_DIR"] = str(wait_dir)
    if wait_at is not None:
        env["FINETUNE_TEST_WAIT_AT_STEP"] = str(wait_at)
    if kill_at is not None:
        env["FINETUNE_TEST_SIGNAL_AT_STEP"] = str(kill_at)
    command = [sys.executable, "train.py", *HELD, f"paths.log_dir={log_dir}"]
    outputs = log_dir / f"process{len(list(log_dir.glob('process*.out')))}"
    with outputs.with_suffix(".out").open("w") as out, outputs.with_suffix(".err").open("w") as err:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
    process.outputs = outputs  # type: ignore[attr-defined]
    return process


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    """The process's exit status and output, once it ended."""
    process.wait(timeout=300)
    out, err = (process.outputs.with_suffix(suffix).read_text() for suffix in (".out", ".err"))
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def wait_for(path: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def refused(process: subprocess.Popen) -> str:
    return one_line_error(finished(process))


def steps_logged(run: Path) -> list[int]:
    import pandas as pd

    frame = pd.read_csv(run / "csv" / "metrics.csv")
    return frame["step"][frame["train/loss_step"].notna()].astype(int).tolist()


@pytest.mark.slow
def test_a_second_identical_command_does_not_take_over_a_live_run(tmp_path: Path) -> None:
    first = start(tmp_path, tmp_path, wait_at=3)
    wait_for(tmp_path / "waiting")  # the first run trains (and holds its dir) at step 3
    second = start(tmp_path, tmp_path)
    assert "an identical run is in progress in" in refused(second)
    (tmp_path / "go").touch()
    result = finished(first)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {summary(run)["status"]: run for run in (tmp_path / "held" / "runs").iterdir()}
    assert set(runs) == {"completed", "failed"}  # the refusal is recorded in the second command's own dir
    assert "val/acc_best" in summary(runs["completed"])["metrics"]


@pytest.mark.slow
def test_two_reruns_of_a_killed_run_resume_it_once(tmp_path: Path) -> None:
    killed = start(tmp_path, tmp_path, kill_at=11)  # a checkpoint every 3 steps: the rerun resumes at step 9
    assert finished(killed).returncode == -9
    (run,) = (tmp_path / "held" / "runs").iterdir()
    reruns = [start(tmp_path, tmp_path, wait_at=12), start(tmp_path, tmp_path, wait_at=12)]
    deadline = time.monotonic() + 300
    while all(p.poll() is None for p in reruns):  # the one that loses the race exits while the winner waits
        assert time.monotonic() < deadline, "neither rerun was refused"
        time.sleep(0.2)
    loser = next(p for p in reruns if p.poll() is not None)
    message = refused(loser)  # refused when it looked, or when it tried to take the lock
    assert "an identical run is in progress in" in message or "is being trained by pid" in message
    (tmp_path / "go").touch()
    winner = finished(next(p for p in reruns if p is not loser))
    assert winner.returncode == 0, winner.stderr[-3000:]
    assert summary(run)["status"] == "completed" and summary(run)["global_step"] == 16
    assert steps_logged(run) == list(range(16))  # one CSV row per step: resumed once, not twice
