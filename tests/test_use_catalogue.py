"""The catalogue of mistakes against eval.py, predict.py, export.py and train.py rerun=/resume=: each is refused in
one line with exit status 2, before any work, and the run it points at is unchanged to the byte (hashes compared)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers.commands import error_line, finished_run, run_script, succeeded
from tests.helpers.commands import tree_hashes as hashes
from tests.test_atomic import small_disk  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the tiny model on the demo reviews (copied by each case before it damages it)."""
    return finished_run(tmp_path_factory.mktemp("catalogue"))


def _edit_config(run: Path, change: Callable[[dict], None]) -> None:
    path = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))


def _foreign_data(victim: Path) -> Callable[[Path], None]:
    """The run's data node replaced by ``builtins.open(victim, "w")``: instantiating it would empty the victim."""
    return lambda run: _edit_config(
        run, lambda c: c.update(data={"_target_": "builtins.open", "file": str(victim), "mode": "w"})
    )


def _cut(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        text = (run / name).read_text()
        (run / name).write_text(text[: len(text) // 2])

    return damage


def _remote_code(run: Path) -> None:
    _edit_config(run, lambda c: c["model"]["net"].update(trust_remote_code=True))


COMMANDS = {
    "eval": lambda run, tmp: ["eval.py", f"run={run}"],
    "predict": lambda run, tmp: ["predict.py", f"run={run}", f"input={tmp / 'rows.txt'}"],
    "export": lambda run, tmp: ["export.py", f"run={run}"],
    "rerun": lambda run, tmp: ["train.py", f"rerun={run}"],
}
DAMAGES = {
    "foreign_target": (None, "is not one of this project's classes"),  # the victim's damage is made per case
    "remote_code": (_remote_code, "trust_remote_code=true would run code"),
    "cut_config": (_cut(".hydra/config.yaml"), ".hydra/config.yaml is damaged"),
}


# Every command against the foreign target (the security case); each other damage against one command (the
# readers are shared: tests/test_saved_runs.py checks them for every file and form).
CASES = [*((command, "foreign_target") for command in COMMANDS), ("eval", "remote_code"), ("predict", "cut_config")]


@pytest.mark.parametrize(("command", "damage"), CASES)
def test_a_run_dir_is_data_never_code(finished: Path, tmp_path: Path, command: str, damage: str) -> None:
    run, victim = tmp_path / "handed_over", tmp_path / "victim.txt"
    shutil.copytree(finished, run)
    victim.write_text("precious\n")
    (tmp_path / "rows.txt").write_text("a review\n")
    damaging, expected = DAMAGES[damage]
    (damaging or _foreign_data(victim))(run)
    before = hashes(run)
    line = error_line(run_script(*COMMANDS[command](run, tmp_path), f"hydra.run.dir={tmp_path / 'command'}"))
    assert expected in line
    assert hashes(run) == before and victim.read_text() == "precious\n"
    if command != "rerun":  # a refused use-command leaves one line, not a folder (train.py records in its own)
        assert not (tmp_path / "command").exists()
        assert expected in json.loads((tmp_path / "refused.jsonl").read_text())["error"]


@pytest.mark.parametrize("command", ["export"])
def test_a_damaged_summary_is_one_line_and_never_taken_over(finished: Path, tmp_path: Path, command: str) -> None:
    run = tmp_path / "handed_over"
    shutil.copytree(finished, run)
    (tmp_path / "rows.txt").write_text("a review\n")
    _cut("metrics.json")(run)
    before = hashes(run)
    line = error_line(run_script(*COMMANDS[command](run, tmp_path), f"hydra.run.dir={tmp_path / 'command'}"))
    assert "its metrics.json is damaged" in line
    assert hashes(run) == before and not (tmp_path / "command").exists()


def test_trust_run_loads_a_run_naming_other_code(finished: Path, tmp_path: Path) -> None:
    run = tmp_path / "handed_over"
    shutil.copytree(finished, run)
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    config["callbacks"]["early_stopping"]["_target_"] = "tests.helpers.commands.PlainEarlyStopping"
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    line = error_line(run_script("export.py", f"run={run}", f"hydra.run.dir={tmp_path / 'refused'}"))
    assert "callbacks.early_stopping._target_=tests.helpers.commands.PlainEarlyStopping" in line
    succeeded(run_script("export.py", f"run={run}", "trust_run=true", f"hydra.run.dir={tmp_path / 'trusted'}"))
    assert json.loads((tmp_path / "trusted" / "model" / "config.json").read_text())["id2label"]


def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(finished: Path, small_disk) -> None:  # noqa: F811
    if small_disk is None:
        pytest.skip("cannot mount a small tmpfs here; tests/test_atomic.py checks the words safetensors uses")
    before = hashes(finished)
    line = error_line(run_script("export.py", f"run={finished}", f"out={small_disk / 'model'}",
                                 f"hydra.run.dir={small_disk.parent / 'command'}"))  # fmt: skip
    assert line.startswith(f"error: disk full: could not write model in {small_disk} (space needed, ")
    assert list(small_disk.iterdir()) == [] and hashes(finished) == before


def test_sigterm_during_eval_exits_non_zero_and_is_recorded(finished: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FINETUNE_TEST_SIGNAL_IN_TEST": "1"}
    hook = "+callbacks.signal_in_test._target_=tests.helpers.signals.SignalAtTestBatch"
    command = [sys.executable, str(ROOT / "eval.py"), f"run={finished}", hook, f"hydra.run.dir={tmp_path / 'e'}"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert "stopped by SIGTERM; stopped while testing, no result written" in result.stderr
    recorded = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert recorded["status"] == "interrupted" and not (tmp_path / "e" / "eval.json").exists()


def test_a_second_predict_to_the_same_output_is_refused_while_the_first_writes(finished: Path, tmp_path: Path) -> None:
    import os

    from finetune.use.inputs import claimed_output

    (tmp_path / "rows.txt").write_text("a review\n")
    output = tmp_path / "preds.jsonl"
    with claimed_output(output, tmp_path / "first"):  # the first predict holds the name while it works
        line = error_line(run_script("predict.py", f"run={finished}", f"input={tmp_path / 'rows.txt'}",
                                     f"output={output}", f"hydra.run.dir={tmp_path / 'second'}"))  # fmt: skip
        assert f"output={output} is being written by pid {os.getpid()}" in line
    assert not output.exists() and not (tmp_path / "second").exists()
    succeeded(run_script("predict.py", f"run={finished}", f"input={tmp_path / 'rows.txt'}", f"output={output}",
                         f"hydra.run.dir={tmp_path / 'third'}"))  # fmt: skip
    assert json.loads(output.read_text())["text"] == "a review"
