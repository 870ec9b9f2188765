"""The real command line in a subprocess: the run-dir contract, a 6-job multirun, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

FAST_CLI = [
    "model=tiny_random",
    "trainer.enable_model_summary=false",
    "callbacks.progress_bar.refresh_rate=0",
]


def run_cli(*args: str, log_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true", "WANDB_API_KEY": ""}
    env.pop("WANDB_API_KEY")
    return subprocess.run(
        [sys.executable, "train.py", *args, f"paths.log_dir={log_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.slow
def test_run_dir_contract(tmp_path: Path) -> None:
    result = run_cli(*FAST_CLI, "debug=limit", "task_name=contract", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "contract" / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert {p.name for p in run.iterdir()} - {"git.diff"} == {  # git.diff: a checkout with uncommitted changes
        ".hydra",
        "provenance.json",
        "rerun.sh",
        "checkpoints",
        "csv",
        "wandb",
        "metrics.json",
        "contract.log",
        "config_tree.log",
        "run_identity.json",
    }
    assert {p.name for p in (run / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "csv" / "metrics.csv").is_file()
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "completed" and "test/acc" in summary["metrics"]
    assert "optimizer" in (run / "config_tree.log").read_text()
    assert_quiet_log(result.stdout + result.stderr, (run / "contract.log").read_text(), summary)


def assert_quiet_log(console: str, log_file: str, summary: dict) -> None:
    """A run whose output is not a terminal prints lines, not a redrawn bar, and no library's own bars or
    banners; its log file holds one line per validation and the outcome (issue 19)."""
    assert "\r" not in console and "it/s]" not in console  # tqdm's redraws
    for noise in ("Saving the dataset", "GPU available", "wandb:", "Seed set", "CONFIG", "Run history"):
        assert noise not in console, noise
    validations = [line for line in log_file.splitlines() if "| val/acc " in line]
    assert [line.split(" - ")[1].split(" |")[0] for line in validations] == ["epoch 1/2 step 4/8", "epoch 2/2 step 8/8"]
    assert all("train/loss " in line and " lr " in line and "samples/s" in line for line in validations)
    assert f"val/acc_best {summary['metrics']['val/acc_best']:.4g}" in validations[-1]
    assert f"stopped: max_epochs after 2 epochs, 8 steps; best checkpoint {summary['best_checkpoint']}" in log_file
    assert "test metrics: {'test/acc'" in log_file
    assert len(console.encode()) < 8000, len(console.encode())  # the whole captured output of a 2-epoch run


@pytest.mark.slow
def test_multirun_gives_each_job_its_own_dir(tmp_path: Path) -> None:
    result = run_cli(
        "-m",
        *FAST_CLI,
        "logger=csv",
        "debug=fdr",
        "task_name=grid",
        "optimizer=sgd,adam,adamw",
        "optimizer.lr=1e-5,3e-5",
        log_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "grid" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2", "3", "4", "5"]
    seen = set()
    for job in jobs:
        summary = json.loads((job / "metrics.json").read_text())
        assert summary["status"] == "completed"
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        seen.add(overrides)
    assert len(seen) == 6  # every job got a different combination


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return errors[0]


@pytest.mark.slow
def test_missing_data_file_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli(*FAST_CLI, "logger=csv", "data=csv", f"data.train_file={tmp_path}/missing.csv", log_dir=tmp_path)
    assert "data.train_file not found" in one_line_error(result)


@pytest.mark.slow
def test_missing_column_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("review,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(20)))
    result = run_cli(*FAST_CLI, "logger=csv", "data=csv", f"data.train_file={path}", log_dir=tmp_path)
    assert "column 'text' not found in the train split" in one_line_error(result)


def test_unknown_optimizer_exits_nonzero_with_choices(tmp_path: Path) -> None:
    result = run_cli("optimizer=adamx", log_dir=tmp_path, timeout=60)
    assert result.returncode != 0
    assert "Could not find 'optimizer/adamx'" in result.stderr and "adamw" in result.stderr
    assert not (tmp_path / "train").exists()  # nothing written for a config that never composed


def test_help_piped_into_a_reader_that_stops_early_is_no_error() -> None:
    import sys

    # `true` reads nothing and exits at once: by the time the help is printed, its pipe is closed.
    shell = f"{sys.executable} train.py --help | true"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands_and_every_option_of_each_group_but_no_internal_one() -> None:
    import re
    import sys

    result = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    for command in (
        "python train.py validate=true",
        "python eval.py run=",
        "python predict.py run=",
        "python export.py run=",
        "python train.py -m hparams_search=optuna",
        "python train.py rerun=",
    ):
        assert command in result.stdout, command  # fmt: skip
    listing = result.stdout.split("Config groups")[1].split("Any setting")[0]
    groups = dict(re.findall(r"^  (\w+) +(.*(?:\n {18}.*)*)", listing, flags=re.MULTILINE))
    for group, options in groups.items():
        shipped = {p.stem for p in (ROOT / "conf" / group).glob("*.yaml")}
        listed = set(re.findall(r"\b[a-z][a-z0-9_]*\b", options)) & shipped
        assert listed == {name for name in shipped if not name.startswith("_")}, group  # _text and friends hidden
    assert set(groups) >= {"data", "model", "optimizer", "scheduler", "adapter", "trainer", "logger", "experiment"}


def test_a_rank_an_external_launcher_started_logs_to_a_file_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchrun and srun start each rank as its own ``train.py`` in one run dir: rank 1 must not share rank 0's
    log file (two handlers appending to one file interleave and truncate each other's lines)."""
    from finetune.cli import external_rank_suffix

    for key, value, suffix in [("RANK", "0", ""), ("RANK", "3", "_rank3"), ("SLURM_PROCID", "2", "_rank2")]:
        monkeypatch.delenv("RANK", raising=False)
        monkeypatch.setenv(key, value)
        assert external_rank_suffix() == suffix
    monkeypatch.setenv("RANK", "1")
    run_dir = tmp_path / "run"
    result = run_cli(*FAST_CLI, "validate=true", f"hydra.run.dir={run_dir}", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (run_dir / "train_rank1.log").is_file() and not (run_dir / "train.log").exists()
