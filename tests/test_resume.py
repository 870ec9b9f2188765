"""Resuming: run identity, checkpoint choice, the mid-epoch data position, and which unfinished run continues."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from finetune.data.resumable import ResumableDataLoader, ShuffledBatchSampler
from finetune.data.sampler import LengthGroupedBatchSampler
from finetune.run.resume import IDENTITY_FILE, prepare_resume, run_identity, trim_csv_logs
from finetune.trainer.checkpoints import newest_good_checkpoint


def test_identity_ignores_where_and_how_a_run_reports(make_cfg) -> None:
    base = run_identity(make_cfg())
    assert run_identity(make_cfg()) == base  # another run dir, same training
    assert run_identity(make_cfg("logger=none", "tags=[x]", "resume=false", "trust_run=true")) == base
    assert run_identity(make_cfg("optimizer.lr=1e-3")) != base
    assert run_identity(make_cfg("seed=7")) != base


def fake_checkpoint(path: Path, step: int, weights_only: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"state_dict": {"w": torch.zeros(2)}, "global_step": step}
    torch.save(state if weights_only else {**state, "optimizer_states": [{}]}, path)
    return path


def test_a_checkpoint_of_weights_only_is_not_resumed_from(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "epoch_003.ckpt", 9, weights_only=True)  # the best: newest, but weights only
    last = fake_checkpoint(tmp_path / "last.ckpt", 6)
    assert newest_good_checkpoint(tmp_path) == last
    last.unlink()
    assert newest_good_checkpoint(tmp_path) is None


def test_newest_good_checkpoint_skips_a_truncated_one(tmp_path: Path, caplog) -> None:
    older = fake_checkpoint(tmp_path / "last-previous.ckpt", 3)
    newest = fake_checkpoint(tmp_path / "last.ckpt", 6)
    assert newest_good_checkpoint(tmp_path) == newest
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        assert newest_good_checkpoint(tmp_path) == older
    assert "last.ckpt is truncated or corrupt" in caplog.text


def test_loader_resumes_at_the_batch_after_its_saved_position() -> None:
    dataset = list(range(50))
    first = ResumableDataLoader(dataset, batch_sampler=ShuffledBatchSampler(50, 8, seed=3))
    first.batch_sampler.sampler.set_epoch(2)  # Lightning's call: ``loader.batch_sampler.sampler.set_epoch``
    epoch = [batch.tolist() for batch in first]
    seen = iter(first)
    consumed = [next(seen).tolist() for _ in range(3)]
    state = first.state_dict()
    assert state == {"epoch": 2, "batches": 3} and consumed == epoch[:3]

    resumed = ResumableDataLoader(dataset, batch_sampler=ShuffledBatchSampler(50, 8, seed=3))
    resumed.load_state_dict(state)
    resumed.batch_sampler.set_epoch(2)
    assert [batch.tolist() for batch in resumed] == epoch[3:]
    assert [batch.tolist() for batch in resumed] == epoch  # the skip applies once
    resumed.batch_sampler.set_epoch(3)
    assert [batch.tolist() for batch in resumed] != epoch  # a new order every epoch


def test_length_grouped_batches_skip_too() -> None:
    sampler = LengthGroupedBatchSampler([i % 17 for i in range(100)], batch_size=10, seed=0, megabatch_size=5)
    everything = list(sampler)
    sampler.skip = 4
    assert list(sampler) == everything[4:]
    assert sorted(i for batch in everything for i in batch) == list(range(100))


def previous_run(cfg, name: str, status: str | None, step: int = 5) -> Path:
    """A run dir of the same config, as a killed (status None), interrupted, failed or completed run leaves it."""
    run = Path(cfg.paths.output_dir).parent / name
    fake_checkpoint(run / "checkpoints" / "last.ckpt", step)
    (run / IDENTITY_FILE).write_text(json.dumps({"identity": run_identity(cfg)}))
    if status is not None:
        (run / "metrics.json").write_text(json.dumps({"status": status}))
    return run


def test_the_same_command_continues_a_killed_run_in_its_dir(make_cfg) -> None:
    cfg = make_cfg()
    fresh = Path(cfg.paths.output_dir)
    killed = previous_run(cfg, "2026-01-01_killed", status=None)
    csv_file = killed / "csv" / "metrics.csv"
    csv_file.parent.mkdir()
    csv_file.write_text("epoch,step,train/loss\n0,3,0.5\n0,4,0.4\n0,5,0.3\n0,6,0.2\n")

    assert prepare_resume(cfg) == killed / "checkpoints" / "last.ckpt"
    assert Path(cfg.paths.output_dir) == killed and cfg.ckpt_path == str(killed / "checkpoints" / "last.ckpt")
    assert not fresh.exists()  # the launch's empty dir is dropped: one dir per run
    assert csv_file.read_text().splitlines()[1:] == ["0,3,0.5", "0,4,0.4"]  # steps >= 5 are logged again


@pytest.mark.parametrize(
    ("status", "setting", "resumes"),
    [
        ("interrupted", "auto", True),
        ("completed", "auto", False),  # a finished run is never continued: the command starts a new one
        ("failed", "auto", False),  # the failure would repeat; resume=<dir> continues it on purpose
        ("interrupted", "false", False),
        ("failed", "<dir>", True),
    ],
)
def test_which_runs_resume(make_cfg, status: str, setting: str, resumes: bool) -> None:
    cfg = make_cfg()
    fresh = Path(cfg.paths.output_dir)
    run = previous_run(cfg, "2026-01-01_previous", status=status)
    with open_dict(cfg):
        cfg.resume = str(run) if setting == "<dir>" else setting
    identity = run_identity(cfg)  # of the command; resuming then sets ckpt_path
    prepare_resume(cfg)
    assert Path(cfg.paths.output_dir) == (run if resumes else fresh)
    assert json.loads((Path(cfg.paths.output_dir) / IDENTITY_FILE).read_text())["identity"] == identity


def test_another_config_is_not_resumed(make_cfg) -> None:
    previous_cfg = make_cfg("optimizer.lr=1e-3")
    previous_run(previous_cfg, "2026-01-01_other", status=None)
    cfg = make_cfg()
    fresh = Path(cfg.paths.output_dir)
    assert prepare_resume(cfg) is None and Path(cfg.paths.output_dir) == fresh


def test_resume_dir_without_checkpoints_is_one_clear_error(make_cfg, tmp_path: Path) -> None:
    from finetune.errors import UserError

    cfg = make_cfg()
    with open_dict(cfg):
        cfg.resume = str(tmp_path / "nowhere")
    with pytest.raises(UserError, match="not a run dir with checkpoints/"):
        prepare_resume(cfg)


def test_trim_keeps_rows_without_a_step(tmp_path: Path) -> None:
    metrics = tmp_path / "csv" / "metrics.csv"
    metrics.parent.mkdir()
    metrics.write_text("step,val/acc\n,0.5\n2,0.6\n9,0.7\n")
    trim_csv_logs(tmp_path, 5)
    assert metrics.read_text().splitlines() == ["step,val/acc", ",0.5", "2,0.6"]
