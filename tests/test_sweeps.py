"""Sweeps through the real CLI: a failing job does not stop the grid, Optuna trials, joblib and submitit launchers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

TINY = ["model=tiny_random", "debug=fdr", "logger=csv", "trainer.enable_model_summary=false"]


def sweep(*args: str, log_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true"}
    return subprocess.run(
        [sys.executable, "train.py", "-m", *args, f"paths.log_dir={log_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def job_dirs(log_dir: Path, task: str = "debug") -> list[Path]:
    (sweep_dir,) = (log_dir / task / "multiruns").iterdir()
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def summary(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


@pytest.mark.slow
def test_a_failing_job_is_recorded_and_the_rest_run(tmp_path: Path) -> None:
    result = sweep(*TINY, "optimizer.lr=1e-3,2e-3,-1,3e-3", log_dir=tmp_path)
    assert result.returncode != 0  # the command says a job failed
    assert "1 of 4 jobs did not complete (jobs 2)" in result.stderr + result.stdout
    jobs = job_dirs(tmp_path)
    statuses = [summary(job)["status"] for job in jobs]
    assert statuses == ["completed", "completed", "failed", "completed"]  # the job after the failure ran too
    failed = summary(jobs[2])
    assert "optimizer.lr must be a positive number" in failed["reason"]
    assert "Traceback" in (jobs[2] / "traceback.txt").read_text()
    sweep_dir = jobs[0].parent  # the report was written at the end, failure included
    rows = (sweep_dir / "summary.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4
    for name in ("curves_val.png", "curves_train_loss.png", "final_metric.png"):
        assert (sweep_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


def test_an_interrupted_job_is_marked(make_cfg, monkeypatch) -> None:
    import finetune.train
    from finetune.cli import run_task

    def interrupted(cfg, plan=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune.train, "main", interrupted)
    cfg = make_cfg()
    with pytest.raises(SystemExit) as stop:
        run_task(cfg)
    assert stop.value.code == 130  # 128 + SIGINT, as a shell reports Ctrl-C
    assert summary(Path(cfg.paths.output_dir))["status"] == "interrupted"


def test_a_missing_optimized_metric_fails_only_a_job_whose_sweeper_ranks_by_it(make_cfg, caplog) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from finetune.errors import UserError
    from finetune.run.summary import metric_value
    from finetune.run.sweep import sweeper_needs_metric

    cfg = make_cfg()
    assert not sweeper_needs_metric()  # a single run
    for sweeper, needs in (("hydra._internal.core_plugins.basic_sweeper.BasicSweeper", False), (OPTUNA, True)):
        job = cfg.copy()
        OmegaConf.set_readonly(job.hydra, False)
        with open_dict(job):
            job.hydra.mode = "MULTIRUN"
            job.hydra.sweeper = {"_target_": sweeper}
        HydraConfig.instance().set_config(job)
        assert sweeper_needs_metric() == needs, sweeper
    no_validation = {"train/loss": 0.5, "test/acc": 0.6}  # e.g. trainer.max_steps below one epoch
    assert metric_value(no_validation, "val/acc_best") is None
    assert "optimized_metric val/acc_best has no value (no validation ran)" in caplog.text
    with pytest.raises(UserError, match="no validation ran; validate sooner"):
        metric_value(no_validation, "val/acc_best", required=True)
    assert metric_value({"val/acc_best": 0.7}, "val/acc_best", required=True) == 0.7


@pytest.mark.slow
def test_optuna_search_resumes_from_its_sqlite_study(tmp_path: Path) -> None:
    storage = tmp_path / "study.db"
    args = [*TINY, "hparams_search=optuna", "hydra.sweeper.n_trials=3", f"hydra.sweeper.storage=sqlite:///{storage}"]
    first = sweep(*args, log_dir=tmp_path / "a")
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(job_dirs(tmp_path / "a")) == 3
    second = sweep(*args, log_dir=tmp_path / "b")  # the same command again: the study continues
    assert second.returncode == 0, second.stderr[-3000:]
    with sqlite3.connect(storage) as db:
        (trials,) = db.execute("select count(*) from trials").fetchone()
        rows = db.execute("select trial_id, param_name, param_value from trial_params order by trial_id").fetchall()
    assert trials == 6
    proposed: dict[int, set] = {}
    for trial, name, value in rows:
        proposed.setdefault(trial, set()).add((name, value))
    sets = [frozenset(params) for _, params in sorted(proposed.items())]
    assert len(sets) == 6 and not set(sets[:3]) & set(sets[3:]), sets  # the resumed study proposed new parameters
    assert "3 trials already done" in second.stdout + second.stderr


@pytest.mark.slow
def test_joblib_runs_jobs_in_parallel_within_the_cores(tmp_path: Path) -> None:
    result = sweep(*TINY, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_dirs(tmp_path)
    cores = os.cpu_count() or 1
    for job in jobs:
        assert summary(job)["status"] == "completed"
        assert summary(job)["threads"] * 2 <= max(cores, 2)


@pytest.mark.slow
def test_submitit_local_runs_a_real_job(tmp_path: Path) -> None:
    result = sweep(*TINY, "hydra/launcher=submitit_local", "seed=1", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = job_dirs(tmp_path)
    assert summary(job)["status"] == "completed"
    assert list((job.parent / ".submitit").iterdir())  # submitit's own job folder
