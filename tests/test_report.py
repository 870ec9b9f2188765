"""The sweep report: tables, grouped statistics, plots and the CLI, on a synthetic sweep dir and a real one."""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from finetune.report import write_report
from finetune.report.cli import main
from finetune.report.collect import collect_jobs, load_curves
from finetune.report.tables import grouped_table
from tests.conftest import ROOT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("curves_val.png", "curves_train_loss.png", "final_metric.png")
CONFIG = """task_name: train
data:
  main_metric: acc
monitor: val/${oc.select:data.main_metric,loss}
monitor_mode: max
optimized_metric: val/${oc.select:data.main_metric,loss}_best
"""
# job: (optimizer, seed, status, val/acc_best, test/acc); job 1 failed after one validation
JOBS = {
    0: ("sgd", 1, "completed", 0.60, 0.58),
    1: ("sgd", 2, "failed", 0.99, None),
    2: ("adam", 1, "completed", 0.80, 0.78),
    3: ("adam", 2, "completed", 0.70, 0.74),
}


def write_job(sweep: Path, job: int, optimizer: str, seed: int, status: str, best: float, test: float | None) -> None:
    job_dir = sweep / str(job)
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(f"- optimizer={optimizer}\n- seed={seed}\n")
    (job_dir / ".hydra" / "config.yaml").write_text(CONFIG)
    metrics = {"val/acc": best - 0.05, "val/acc_best": best, "val/loss": 1.0 - best, "train/loss": 0.5 + seed / 10}
    summary: dict = {"status": status, "metrics": metrics}
    if status == "failed":
        summary["reason"] = "RuntimeError: boom"
        (job_dir / "traceback.txt").write_text("Traceback (most recent call last):\nRuntimeError: boom\n")
    else:
        metrics["test/acc"] = test
        summary.update(stop_reason="max_epochs", run_time_s=10.0 + job, epochs=2, global_step=8)
        rows = ["epoch,step,train/loss_step,val/acc,val/acc_best"]
        for step in range(8):
            rows.append(f"{step // 4},{step},{0.7 - 0.02 * step - 0.01 * job},,")
            if step % 4 == 3:
                value = best - 0.1 + 0.1 * (step // 4)
                rows.append(f"{step // 4},{step},,{value},{value}")
        (job_dir / "csv").mkdir()
        (job_dir / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    (job_dir / "metrics.json").write_text(json.dumps(summary))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A sweep dir of 4 jobs (optimizer × seed); job 1 failed with partial metrics and no CSV."""
    sweep_dir = tmp_path / "multiruns" / "2026-01-01_00-00-00_000000"
    for job, spec in JOBS.items():
        write_job(sweep_dir, job, *spec)
    (sweep_dir / "multirun.yaml").write_text("hydra: {}\n")
    return sweep_dir


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 1024
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def group_row(grouped: pd.DataFrame, **keys: str) -> pd.Series:
    mask = pd.Series(True, index=grouped.index)
    for key, value in keys.items():
        mask &= grouped[key].astype(str) == value
    (index,) = grouped.index[mask]
    return grouped.loc[index]


def test_collect_jobs_reads_overrides_status_and_metrics(sweep: Path) -> None:
    df = collect_jobs(sweep)
    assert list(df["job"]) == [0, 1, 2, 3]
    assert list(df["optimizer"]) == ["sgd", "sgd", "adam", "adam"]
    assert list(df["seed"]) == ["1", "2", "1", "2"]
    assert df.loc[2, "overrides"] == "optimizer=adam seed=1"
    assert list(df["status"]) == ["completed", "failed", "completed", "completed"]
    assert df.loc[1, "reason"] == "RuntimeError: boom"
    assert df.attrs["optimized_metric"] == "val/acc_best" and df.attrs["monitor"] == "val/acc"  # resolved
    assert list(df["best"]) == pytest.approx([0.60, 0.99, 0.80, 0.70])
    assert df.loc[3, "test/acc"] == pytest.approx(0.74) and math.isnan(df.loc[1, "test/acc"])
    assert df.loc[0, "train/loss"] == pytest.approx(0.6) and df.loc[3, "run_time_s"] == pytest.approx(13.0)
    curves = load_curves(sweep / "2")
    assert curves["val/acc"].dropna().tolist() == pytest.approx([0.7, 0.8])
    assert load_curves(sweep / "1").empty  # the failed job wrote no CSV


def test_write_report_writes_tables_and_plots(sweep: Path) -> None:
    written = write_report(sweep)
    assert set(written) == {
        "summary_csv",
        "summary_grouped_csv",
        "summary_md",
        "curves_val",
        "curves_train_loss",
        "final_metric",
    }
    assert all(path.parent == sweep for path in written.values())
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4
    assert dict(zip(summary["job"], summary["status"], strict=True)) == {
        0: "completed",
        1: "failed",
        2: "completed",
        3: "completed",
    }
    for name in PLOTS:
        assert_png(sweep / name)
    markdown = (sweep / "summary.md").read_text().replace("**", "")  # the best mean is bold
    assert "[3](3/)" in markdown and "RuntimeError: boom" in markdown
    assert f"{statistics.mean([0.80, 0.70]):.4g} ± {statistics.stdev([0.80, 0.70]):.4g} (2)" in markdown


def test_grouped_table_over_seeds_counts_completed_runs_only(sweep: Path) -> None:
    write_report(sweep)
    grouped = pd.read_csv(sweep / "summary_grouped.csv")
    assert sorted(grouped["optimizer"]) == ["adam", "sgd"]
    adam = group_row(grouped, optimizer="adam")
    for metric, values in {"val/acc_best": [0.80, 0.70], "test/acc": [0.78, 0.74], "best": [0.80, 0.70]}.items():
        assert adam[f"{metric} mean"] == pytest.approx(statistics.mean(values))
        assert adam[f"{metric} std"] == pytest.approx(statistics.stdev(values))
        assert adam[f"{metric} n"] == 2
    sgd = group_row(grouped, optimizer="sgd")
    assert (sgd["runs"], sgd["completed"], sgd["val/acc_best n"]) == (2, 1, 1)
    assert sgd["val/acc_best mean"] == pytest.approx(0.60)  # the failed job's 0.99 does not count
    assert math.isnan(sgd["val/acc_best std"])  # one run: no std (an empty CSV cell)
    with (sweep / "summary_grouped.csv").open() as handle:
        cells = {row["optimizer"]: row for row in csv.DictReader(handle)}
    assert cells["sgd"]["val/acc_best std"] == "" and cells["adam"]["val/acc_best std"] != ""


def test_grouped_table_over_other_keys(sweep: Path) -> None:
    df = collect_jobs(sweep)
    by_seed = grouped_table(df, over=["optimizer"], metric="test/acc")
    assert by_seed.attrs["group_keys"] == ["seed"] and list(by_seed.columns[:4]) == [
        "seed",
        "runs",
        "completed",
        "test/acc mean",
    ]
    seed_two = group_row(by_seed, seed="2")
    assert (seed_two["test/acc n"], seed_two["test/acc mean"]) == (1, pytest.approx(0.74))  # job 1 failed
    everything = grouped_table(df, over=["seed", "optimizer"])
    assert len(everything) == 1 and everything.loc[0, "group"] == "all"
    assert everything.loc[0, "best mean"] == pytest.approx(statistics.mean([0.60, 0.80, 0.70]))
    assert everything.loc[0, "best std"] == pytest.approx(statistics.stdev([0.60, 0.80, 0.70]))
    assert everything.loc[0, "best n"] == 3


def test_cli_over_two_keys_and_metric(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sweep), "--over", "seed", "--over", "optimizer", "--metric", "test/acc"]) == 0
    out = capsys.readouterr().out
    assert f"report: {sweep / 'summary.md'}" in out
    assert "| group | runs | test/acc |" in out
    grouped = pd.read_csv(sweep / "summary_grouped.csv")
    assert len(grouped) == 1 and grouped.loc[0, "test/acc n"] == 3
    assert grouped.loc[0, "test/acc mean"] == pytest.approx(statistics.mean([0.58, 0.78, 0.74]))


@pytest.mark.parametrize("kind", ["empty", "missing", "file"])
def test_cli_rejects_a_path_that_is_not_a_sweep_dir(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / kind
    if kind == "empty":
        (path / "not_a_job").mkdir(parents=True)
    elif kind == "file":
        path.write_text("x")
    assert main([str(path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert captured.out == ""


def test_cli_rejects_an_unknown_metric(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sweep), "--metric", "val/nope"]) == 2
    assert capsys.readouterr().err.startswith("error: metric 'val/nope'")


def test_write_report_survives_broken_jobs(sweep: Path, caplog: pytest.LogCaptureFixture) -> None:
    (sweep / "4").mkdir()  # crashed before writing anything
    (sweep / "10" / ".hydra").mkdir(parents=True)
    (sweep / "10" / ".hydra" / "overrides.yaml").write_text("- optimizer=adam\n- seed=3\n")
    (sweep / "10" / "metrics.json").write_text("{truncated")
    (sweep / "3" / "csv" / "metrics.csv").write_text("")
    written = write_report(sweep, metric="val/unknown")  # an unknown metric falls back to the optimized one
    assert {"summary_csv", "summary_md", "final_metric"} <= set(written)
    summary = pd.read_csv(sweep / "summary.csv")
    assert list(summary["job"]) == [0, 1, 2, 3, 4, 10]  # numeric order, every job listed
    assert list(summary["status"])[4:] == ["missing", "missing"]
    assert "no metrics.json" in caplog.text and "unreadable metrics.json" in caplog.text
    grouped = pd.read_csv(sweep / "summary_grouped.csv")
    assert group_row(grouped, optimizer="adam")["best n"] == 2
    assert write_report(sweep / "nowhere") == {}


@pytest.mark.slow
def test_report_on_a_real_sweep(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true"}
    args = ["model=tiny_random", "debug=fdr", "logger=csv", "optimizer=sgd,adam", f"paths.log_dir={tmp_path}"]
    run = subprocess.run(
        [sys.executable, "train.py", "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "debug" / "multiruns").iterdir()
    report = subprocess.run(
        [sys.executable, "-m", "finetune.report", str(sweep_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    assert f"report: {sweep_dir / 'summary.md'}" in report.stdout
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert list(summary["optimizer"]) == ["sgd", "adam"] and set(summary["status"]) == {"completed"}
    assert summary["best"].notna().all()
    grouped = pd.read_csv(sweep_dir / "summary_grouped.csv")
    assert list(grouped["optimizer"]) == ["sgd", "adam"] and list(grouped["best n"]) == [1, 1]
    for name in PLOTS:
        assert_png(sweep_dir / name)


def test_a_failed_jobs_whole_reason_reaches_the_report(sweep: Path) -> None:
    from finetune.report.tables import REASON_WIDTH
    from finetune.run.outcome import record_outcome

    tail = "needs a CUDA GPU; this machine has none " + "x" * REASON_WIDTH
    record_outcome(sweep / "1", "failed", RuntimeError(f"the trainer did not start\n{tail}"))
    reason = json.loads((sweep / "1" / "metrics.json").read_text())["reason"]
    assert reason == f"RuntimeError: the trainer did not start {tail}"  # one line, nothing dropped
    write_report(sweep)
    assert pd.read_csv(sweep / "summary.csv")["reason"][1] == reason  # whole in the table file
    (line,) = [row for row in (sweep / "summary.md").read_text().splitlines() if row.startswith("- [job 1]")]
    assert "the trainer did not start needs a CUDA GPU" in line and "…" in line and "x" * REASON_WIDTH not in line
    assert "RuntimeError: the trainer did not start" in (sweep / "1" / "traceback.txt").read_text()
