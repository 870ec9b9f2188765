"""The run lock: one live process per run dir, a killed holder's lock taken over, and what resume does with it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import open_dict

from finetune.errors import UserError
from finetune.run.lock import LOCK_FILE, RunLock, holder
from finetune.run.resume import claim_run, plan_resume
from tests.conftest import ROOT
from tests.test_resume import previous_run


def test_a_held_lock_names_its_holder_and_refuses_a_second(tmp_path: Path) -> None:
    assert holder(tmp_path) is None
    lock = RunLock(tmp_path)
    assert holder(tmp_path).startswith("pid ")
    with pytest.raises(UserError, match=r"is being trained by pid .* resume=false starts a separate run"):
        RunLock(tmp_path)
    lock.release()
    assert holder(tmp_path) is None and not (tmp_path / LOCK_FILE).exists()
    RunLock(tmp_path).release()  # free again


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    code = f"from pathlib import Path; from finetune.run.lock import RunLock; lock = RunLock(Path({str(tmp_path)!r})); "
    code += "print('locked', flush=True); import time; time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        assert f"pid {child.pid} on host" in (holder(tmp_path) or "")
    finally:
        child.kill()
        child.wait()
    assert (tmp_path / LOCK_FILE).exists()  # a kill -9 leaves the file behind ...
    assert holder(tmp_path) is None  # ... but not the lock
    RunLock(tmp_path).release()


def test_an_identical_run_in_progress_is_refused(make_cfg) -> None:
    cfg = make_cfg()
    live = previous_run(cfg, "2026-01-01_live", status=None)
    lock = RunLock(live)
    try:
        with pytest.raises(UserError, match=r"an identical run is in progress in .*_live .*resume=false"):
            plan_resume(cfg)
        with open_dict(cfg):
            cfg.resume = str(live)
        with pytest.raises(UserError, match="trains in that run now"):
            plan_resume(cfg)
        with open_dict(cfg):
            cfg.resume = False
        assert plan_resume(cfg).run_dir == Path(cfg.paths.output_dir)  # a separate run is fine
    finally:
        lock.release()


def test_two_commands_that_planned_the_same_killed_run_only_one_claims_it(make_cfg) -> None:
    first, second = make_cfg(), make_cfg()
    killed = previous_run(first, "2026-01-01_killed", status=None)
    csv_file = killed / "csv" / "metrics.csv"
    csv_file.parent.mkdir()
    csv_file.write_text("epoch,step,train/loss\n0,4,0.4\n0,5,0.3\n")
    plans = [plan_resume(first), plan_resume(second)]  # both looked before either took the lock
    assert plans[0].run_dir == plans[1].run_dir == killed
    with claim_run(first, plans[0]):
        assert first.paths.output_dir == str(killed)
        with pytest.raises(UserError, match="is being trained by pid"), claim_run(second, plans[1]):
            pass
        assert second.paths.output_dir != str(killed)  # the loser records its failure in its own dir
    assert csv_file.read_text().splitlines() == ["epoch,step,train/loss", "0,4,0.4"]
    assert holder(killed) is None


def test_planning_to_resume_a_completed_run_writes_nothing_there(make_cfg) -> None:
    cfg = make_cfg()
    done = previous_run(cfg, "2026-01-01_done", status="completed")
    before = {p: p.read_bytes() for p in done.rglob("*") if p.is_file()}
    with open_dict(cfg):
        cfg.resume = str(done)
    plan = plan_resume(cfg)  # what runs before the preflight: reads only
    assert plan.run_dir == done.resolve() and cfg.paths.output_dir != str(done)
    assert cfg.ckpt_path == str(done.resolve() / "checkpoints" / "last.ckpt")
    assert {p: p.read_bytes() for p in done.rglob("*") if p.is_file()} == before


def test_a_run_that_changed_while_a_command_started_is_left_alone(make_cfg) -> None:
    cfg = make_cfg()
    killed = previous_run(cfg, "2026-01-01_killed", status=None)
    plan = plan_resume(cfg)
    (killed / "metrics.json").write_text(json.dumps({"status": "completed"}))  # another process finished it
    with pytest.raises(UserError, match="changed while this command was starting"), claim_run(cfg, plan):
        pass
    assert json.loads((killed / "metrics.json").read_text()) == {"status": "completed"}


def test_claim_holds_the_lock_while_the_body_runs(make_cfg) -> None:
    cfg = make_cfg()
    plan = plan_resume(cfg)
    with claim_run(cfg, plan):
        assert holder(plan.run_dir) is not None
        time.sleep(0.01)
    assert holder(plan.run_dir) is None
