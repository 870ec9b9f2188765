"""What a completed run keeps on disk: its best weights (no optimizer state), and last.ckpt only where it may be
trained further; the size kept is in metrics.json (issue 19: a default run kept 781 MB, a 15-job sweep 12 GB)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from finetune.errors import UserError
from finetune.run.resume import plan_resume
from finetune.train import train
from finetune.trainer.callbacks import LastCheckpoint
from finetune.trainer.checkpoints import folder_mb


def kept(run_dir: Path) -> set[str]:
    return {path.name for path in (run_dir / "checkpoints").glob("*.ckpt")}


def test_a_completed_run_keeps_best_weights_and_the_state_to_train_further(make_cfg) -> None:
    cfg = make_cfg()
    summary = train(cfg)
    run = Path(cfg.paths.output_dir)
    best = Path(summary["best_checkpoint"])
    assert kept(run) == {best.name, "last.ckpt"}  # last-previous.ckpt, a fallback while writing, is gone
    assert "optimizer_states" not in torch.load(best, weights_only=True)
    assert "optimizer_states" in torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert summary["checkpoints_kept_mb"] == folder_mb(run / "checkpoints") > 0


def test_without_keep_only_the_best_weights_stay_and_resume_says_why(make_cfg) -> None:
    cfg = make_cfg("callbacks.last_checkpoint.keep_when_done=false")
    summary = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert kept(run) == {Path(summary["best_checkpoint"]).name}
    again = make_cfg("callbacks.last_checkpoint.keep_when_done=false", "trainer.max_epochs=3")
    with open_dict(again):
        again.resume = str(run)
    with pytest.raises(UserError, match=r"kept its best weights only: callbacks\.last_checkpoint\.keep_when_done=true"):
        plan_resume(again, multirun=False)


def test_fitting_from_a_best_checkpoint_is_refused_before_any_work(make_cfg) -> None:
    from finetune.run.inputs import check_resumable

    cfg = make_cfg("trainer.max_epochs=1")
    best = train(cfg)["best_checkpoint"]
    with pytest.raises(UserError, match=r"holds weights only .*checkpoints/last\.ckpt of a run.*train=false"):
        check_resumable(best)
    check_resumable(str(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"))  # full state: accepted


@pytest.mark.parametrize(("keep", "in_sweep", "left"), [("auto", False, 1), ("auto", True, 0), (True, True, 1)])
def test_when_done_keeps_last_by_setting_and_sweep(tmp_path: Path, keep: bool | str, in_sweep: bool, left: int) -> None:
    for name in ("last.ckpt", "last.ckpt.sha256", "last-previous.ckpt", "last-previous.ckpt.sha256", "epoch_001.ckpt"):
        (tmp_path / name).write_bytes(b"x")
    LastCheckpoint(str(tmp_path), keep_when_done=keep).when_done(in_sweep=in_sweep)
    assert not (tmp_path / "last-previous.ckpt").exists() and not (tmp_path / "last-previous.ckpt.sha256").exists()
    assert (tmp_path / "epoch_001.ckpt").is_file()
    assert len(list(tmp_path.glob("last.ckpt*"))) == 2 * left


def test_keep_when_done_takes_three_values() -> None:
    with pytest.raises(ValueError, match="keep_when_done must be true, false or auto"):
        LastCheckpoint("x", keep_when_done="yes")
