"""wandb without credentials: an offline run in the run dir holding the metrics, closed after the job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.cli import run_task
from finetune.trainer.loggers import wandb_credentials_present, wandb_run_id
from tests.helpers.wandb_records import logged_history, read_records


@pytest.fixture
def no_wandb_credentials(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_credentials_detection(no_wandb_credentials, monkeypatch, tmp_path: Path) -> None:
    assert not wandb_credentials_present()
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / "netrc").chmod(0o600)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_credentials_present()


def test_offline_run_lands_in_run_dir_with_metrics(no_wandb_credentials, make_cfg) -> None:
    import wandb

    cfg = make_cfg("logger=wandb", "debug=limit", "trainer.max_epochs=1", "optimizer=adam")
    run_task(cfg)  # the task function closes the wandb run, whatever happened
    assert wandb.run is None  # finished after the job
    run_dir = Path(cfg.paths.output_dir)
    files = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    history = logged_history(files[0])
    summary = json.loads((run_dir / "metrics.json").read_text())
    logged = {key: float(value) for row in history for key, value in row.items() if "/" in key}
    for key in ("test/acc", "test/loss", "val/acc"):
        assert logged[key] == pytest.approx(summary["metrics"][key], rel=1e-6), key
    assert any("train/loss_step" in row for row in history)
    run = next(r.run for r in read_records(files[0]) if r.WhichOneof("record_type") == "run")
    assert run.display_name == cfg.hydra.job.override_dirname  # named after the job's overrides
    assert run.run_group == cfg.task_name
    assert run.run_id == wandb_run_id(run_dir)  # the same dir (a resumed run) continues the same wandb run


def test_multirun_jobs_are_grouped_by_their_sweep(no_wandb_credentials, make_cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    from finetune.trainer.loggers import job_name_and_group

    cfg = make_cfg("optimizer=adam")
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = "outputs/train/multiruns/2026-01-01_00-00-00_000001"
    HydraConfig.instance().set_config(cfg)
    name, group = job_name_and_group("train")
    assert name == cfg.hydra.job.override_dirname
    assert group == "train/2026-01-01_00-00-00_000001"


def test_credentials_without_a_reachable_server_fall_back_to_offline(monkeypatch, tmp_path: Path, caplog) -> None:
    """A key but no server (a closed port here): offline at once with one warning, not minutes of retries."""
    import socket
    import time

    from finetune.trainer.loggers import wandb_logger

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_SILENT", "true")
    started = time.monotonic()
    logger = wandb_logger(save_dir=str(tmp_path), project="p", offline="auto")
    try:
        assert logger.experiment.settings.mode in ("offline", "dryrun")  # wandb names offline mode dryrun
        assert time.monotonic() - started < 60
        warnings = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
        assert len(warnings) == 1 and f"127.0.0.1:{port}; logging offline" in warnings[0]
    finally:
        logger.experiment.finish()
