"""What eval.py, predict.py and export.py write and refuse, without a trainer: the output's checks and claim, the
commands' own settings, input columns kept, ragged rows, the record of a refusal, the saved config tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from finetune.errors import UserError
from tests.conftest import ROOT


def test_check_output_refuses_an_existing_file_a_link_and_a_path_inside_a_run(tmp_path: Path) -> None:
    from finetune.use.inputs import check_output

    own = tmp_path / "command"
    assert check_output(tmp_path / "new.jsonl", own) == (tmp_path / "new.jsonl").resolve()
    (tmp_path / "old.jsonl").write_text("kept\n")
    with pytest.raises(UserError, match="already exists"):
        check_output(tmp_path / "old.jsonl", own)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_output(tmp_path / "file" / "out.jsonl", own)
    (tmp_path / "dangling.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(UserError, match="is a symbolic link"):
        check_output(tmp_path / "dangling.jsonl", own)
    for run in (tmp_path / "run", own):  # a run this command did not create, and the command's own dir
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text("{}\n")
    with pytest.raises(UserError, match=r"out=.*/run/hf/x is inside the run .*/run, which this command did not"):
        check_output(tmp_path / "run" / "hf" / "x", own, "out")
    assert check_output(own / "model", own, "out") == (own / "model").resolve()


@pytest.mark.parametrize(
    ("command", "override", "expected"),
    [
        ("predict", "batch_size=0", r"^batch_size must be a whole number >= 1"),
        ("predict", "batch_size=abc", r"^batch_size must be a whole number >= 1"),
        ("predict", "trainer.precision=bf32", r"^trainer does not build: .*bf32"),
        ("predict", "trainer.devices=abc", r"^trainer does not build: "),
        ("predict", "+key=1", r"^key is not a setting"),
        ("predict", "+trainer.foo=1", r"^trainer.foo is not a setting of lightning.pytorch.Trainer"),
        ("export", "+key=1", r"^key is not a setting"),
        ("export", "merge=maybe", r"^merge must be true or false, got 'maybe'"),
        ("export", "trust_run=1", r"^trust_run must be true or false"),
    ],
)
def test_predict_and_export_check_their_own_settings(tmp_path: Path, command: str, override: str, expected) -> None:
    from hydra import compose, initialize_config_dir

    from finetune.use.settings import check_command_settings

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            command, overrides=["run=x", "input=y", override] if command == "predict" else ["run=x", override]
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    with pytest.raises(UserError, match=expected):
        check_command_settings(cfg, command)


def test_predict_and_export_defaults_pass_their_checks(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    from finetune.use.settings import check_command_settings

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for command, extra in (("predict", ["input=y"]), ("export", [])):
            cfg = compose(command, overrides=["run=x", *extra])
            with open_dict(cfg):
                cfg.paths.output_dir = str(tmp_path)
            check_command_settings(cfg, command)


def test_predictions_never_replace_an_input_column(tmp_path: Path) -> None:
    from finetune.use.predict import write_output

    rows = [{"id": "a", "text": "fine", "label": "negative"}, {"text": "ok"}]
    records = {0: {"label": "positive", "score": 0.9}, 1: {"label": "negative", "score": 0.6}}
    write_output(tmp_path / "out.jsonl", rows, records, [], "id")
    first, second = (json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines())
    assert first == {"id": "a", "text": "fine", "label": "negative", "predicted_label": "positive", "score": 0.9}
    assert second == {"id": 1, "text": "ok", "label": "negative", "score": 0.6}


@pytest.mark.parametrize(("text", "fields"), [("text,label\na,b\nc,d,e\n", 3), ("text,label\na,b\nc\n", 1)])
def test_a_ragged_csv_row_is_refused_naming_its_line(tmp_path: Path, text: str, fields: int) -> None:
    from finetune.use.inputs import read_rows

    (tmp_path / "rows.csv").write_text(text)
    with pytest.raises(UserError, match=rf"rows.csv:3: {fields} fields where the header has 2"):
        read_rows(str(tmp_path / "rows.csv"), None, "text")
    (tmp_path / "quoted.csv").write_text('text,label\n"c,d",e\n')
    assert read_rows(str(tmp_path / "quoted.csv"), None, "text") == [{"text": "c,d", "label": "e"}]


def test_an_output_is_claimed_until_written_and_a_dead_writers_leftovers_go(tmp_path: Path) -> None:
    import os

    from finetune.use.inputs import claimed_output

    own, target = tmp_path / "command", tmp_path / "preds.jsonl"
    dead, live = tmp_path / ".preds.jsonl.99999999.tmp", tmp_path / f".preds.jsonl.{os.getpid()}.tmp"
    for leftover in (dead, live):
        leftover.write_text("half\n")
    with claimed_output(target, own) as claimed:
        assert claimed == target.resolve() and not dead.exists() and live.exists()
        busy = rf"^output={target} is being written by pid {os.getpid()} on host "
        with pytest.raises(UserError, match=busy), claimed_output(target, own):
            pass
        claimed.write_text("done\n")
    assert not (tmp_path / ".preds.jsonl.lock").exists()  # released: the lock file goes
    with pytest.raises(UserError, match="already exists"), claimed_output(target, own):
        pass


def test_a_refused_command_leaves_one_line_not_a_folder(tmp_path: Path) -> None:
    from finetune.use.refusals import fold_into_record

    refused = tmp_path / "runs" / "2026-12-03_10-00-00"
    (refused / ".hydra").mkdir(parents=True)
    (refused / ".hydra" / "config.yaml").write_text("{}\n")
    (refused / "predict.log").write_text("")
    kept = tmp_path / "runs" / "2026-12-03_10-00-01"
    (kept / ".hydra").mkdir(parents=True)
    (kept / "predictions.jsonl").write_text("{}\n")  # a result: the dir stays
    record = fold_into_record(refused, "input=x.csv does not exist")
    assert record == tmp_path / "runs" / "refused.jsonl" and not refused.exists()
    assert json.loads(record.read_text())["error"] == "input=x.csv does not exist"
    assert fold_into_record(kept, "late failure") is None and kept.exists()


def test_the_saved_config_tree_never_cuts_a_value(tmp_path: Path) -> None:
    from finetune.run.summary import print_config_tree

    run_dir = "/very/long/" + "x" * 150 + "/2026-12-03_10-00-00_123456"
    print_config_tree(OmegaConf.create({"paths": {"output_dir": run_dir}, "seed": 1}), tmp_path / "t.log", show=False)
    text = (tmp_path / "t.log").read_text()
    assert f"output_dir: {run_dir}\n" in text and all(line == line.rstrip() for line in text.splitlines())
