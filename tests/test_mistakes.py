"""The second catalogue of mistakes (docs/bad_input.md, "Round two"): case, the one line it must print, exit 2,
and nothing trained or cached. Config and data cases go through ``run_task`` (the CLI's task function) on the
composed config; what Hydra itself rejects, and the run-dir rules, through the real command line."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from finetune.cli import run_task
from tests.conftest import ROOT
from tests.test_bad_input import BERT, csv_file, fixed, hand_checkpoint, user_csv


def write(name: str, text: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_text(text)
        return tmp / name

    return make


def labelled(labels: list[str]) -> Callable[[Path], Path]:
    return write("labels.csv", "text,label\n" + "".join(f"review {i},{label}\n" for i, label in enumerate(labels)))


def other_size_checkpoint(tmp: Path) -> list[str]:
    path = hand_checkpoint(tmp / "big.ckpt", **BERT)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["net.bert.embeddings.word_embeddings.weight"] = torch.zeros(30522, 768)
    torch.save(checkpoint, path)
    return [f"ckpt_path={path}"]


BAD_JSONL = write("b.jsonl", '{"text": "a", "label": "p"}\n{oops\n')

# case -> (overrides made in a tmp dir, the first line it must print after "error: ")
CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    # values accepted before and silently wrong
    "clip_negative": (fixed("trainer.gradient_clip_val=-1"), r"trainer.gradient_clip_val must be a finite number >= 0"),
    "patience_negative": (fixed("callbacks.early_stopping.patience=-2"), r"callbacks.early_stopping.patience must be"),
    "num_cycles_negative": (fixed("scheduler=cosine", "scheduler.num_cycles=-1"), r"scheduler.num_cycles must be a"),
    "warmup_ratio_above_1": (fixed("scheduler.warmup_ratio=1.5"), r"scheduler.warmup_ratio must be a number from 0"),
    "max_length_1": (fixed("data.max_length=1"), r"data.max_length=1 leaves no room for text: the tokenizer adds"),
    "unknown_top_level_key": (fixed("+foo=1"), r"foo is not a setting; the top-level settings are"),
    "lr_inf": (fixed("optimizer.lr=inf"), r"optimizer.lr must be a positive number"),
    "lr_nan": (fixed("optimizer.lr=nan"), r"optimizer.lr must be a positive number"),
    "label_smoothing_1": (fixed("model.label_smoothing=1.0"), r"model.label_smoothing must be a number >= 0 and < 1"),
    "mixed_labels": (user_csv(train=labelled(["1", "positive", "0", "negative"] * 5)), r"label column 'label' mixes"),
    "missing_label": (user_csv(train=labelled(["pos", "neg", "", "pos"] * 5)), r"row 3 of the \w+ split has no label"),
    "nan_among_scores": (user_csv(train=labelled(["0.5", "1.5", "", "2.0"] * 5)), r"row 3 of the \w+ split has no"),
    # values that ended in a traceback
    "weight_decay_negative": (fixed("optimizer.weight_decay=-0.1"), r"optimizer.weight_decay must be a finite number"),
    "betas_above_1": (fixed("optimizer.betas=[0.9,1.5]"), r"optimizer.betas must be two numbers >= 0 and < 1"),
    "momentum_negative": (fixed("optimizer=sgd", "optimizer.momentum=-0.5"), r"optimizer.momentum must be a number"),
    "optimizer_unknown_keyword": (fixed("+optimizer.foo=1"), r"optimizer.foo is not a setting of torch.optim.AdamW"),
    "eps_zero": (fixed("optimizer.eps=0"), r"optimizer.eps must be a finite number > 0"),
    "val_check_interval_0": (fixed("trainer.val_check_interval=0"), r"trainer.val_check_interval must be a fraction"),
    "log_every_n_steps_0": (fixed("trainer.log_every_n_steps=0"), r"trainer.log_every_n_steps must be an integer >= 1"),
    "trainer_unknown_flag": (fixed("+trainer.foo=1"), r"trainer.foo is not a setting of lightning.pytorch.Trainer"),
    "callback_typo": (fixed("+callbacks.early_stopping.patinece=3"), r"callbacks.early_stopping.patinece is not a se"),
    "every_n_train_steps_negative": (
        fixed("callbacks.last_checkpoint.every_n_train_steps=-1"),
        r"callbacks.last_checkpoint.every_n_train_steps must be an integer >= 0",
    ),
    "trainer_rejects": (fixed("trainer.accelerator=quantum"), r"trainer does not build: .*quantum"),
    "csv_ragged_row": (
        user_csv(train=write("r.csv", "text,label\nfine,pos\na, b,neg\nok,neg\n" * 3)),
        r"data.train_file .*r.csv:3: 3 fields where the header has 2 \(text, label\); quote a text",
    ),
    "jsonl_bad_line": (
        lambda t: ["data=jsonl", f"data.train_file={BAD_JSONL(t)}"],
        r"data.train_file .*b.jsonl:2: not valid JSON",
    ),
    "header_only": (user_csv(train=write("h.csv", "text,label\n")), r"data.train_file holds no examples .*h.csv"),
    "csv_given_to_json": (
        lambda t: ["data=json", f"data.train_file={csv_file(t)}"],
        r"data.train_file .*train.csv:1: not valid JSON",
    ),
    "file_is_a_folder": (lambda t: ["data=csv", f"data.train_file={t}"], r"data.train_file is a folder, not a file"),
    "model_folder_without_tokenizer": (
        lambda t: [f"model.net.pretrained={(t / 'empty').mkdir() or t / 'empty'}"],
        r"(could not load|no usable tokenizer in) .*empty",
    ),
    "checkpoint_of_another_size": (other_size_checkpoint, r"checkpoint .*big.ckpt holds another size of this model"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_mistake_is_one_line_exit_2_and_nothing_done(case: str, make_cfg, tmp_path: Path, capsys) -> None:
    make_overrides, expected = CASES[case]
    cfg = make_cfg(*make_overrides(tmp_path))
    with pytest.raises(SystemExit) as stop:
        run_task(cfg)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), lines[-3:]
    assert re.match(expected, lines[-1].removeprefix("error: ")), lines[-1]
    written = {p.name for p in Path(cfg.paths.output_dir).iterdir()}
    assert written <= {"config_tree.log", "metrics.json", "traceback.txt"}, written  # the failure record only


# --- what Hydra rejects while composing, and the run-dir rules: the real command line ---

HYDRA_CASES = {
    "key_typo": (["callbacks.early_stopping.patinece=3"], "Could not override 'callbacks.early_stopping.patinece'"),
    "unknown_option": (["optimizer=adamx"], "Could not find 'optimizer/adamx'; Available options in 'optimizer': ada"),
    "unparsable": (["optimizer.lr=[1"], "cannot parse the override 'optimizer.lr=[1'"),
    "append_existing": (["+data.batch_size=3"], "An item is already at 'data.batch_size'"),
    "moved_setting": (["data.global_batch_size=64"], "; data.global_batch_size is now global_batch_size"),
    "task_name_with_separator": (["task_name=a/b"], "task_name='a/b' must be a plain folder name"),
    "bad_storage_url": (["-m", "hparams_search=optuna", "hydra.sweeper.storage=foo:bar"], "is not a database URL"),
}


@pytest.mark.parametrize("case", list(HYDRA_CASES))
def test_what_hydra_rejects_is_one_line_exit_2(case: str, tmp_path: Path) -> None:
    overrides, expected = HYDRA_CASES[case]
    result = subprocess.run(
        [sys.executable, "train.py", *overrides, f"paths.log_dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not any(tmp_path.iterdir())  # refused before Hydra made a dir


def test_trust_remote_code_is_warned_about_before_the_preflight_runs_it(make_cfg, caplog) -> None:
    from finetune.run.preflight import validate_config

    validate_config(make_cfg("model.net.trust_remote_code=true"))
    assert any("model.net.trust_remote_code=true: code shipped with" in r.getMessage() for r in caplog.records)


def test_labels_written_as_whole_floats_are_classes_not_scores(make_cfg, tmp_path: Path) -> None:
    """1.0/0.0 from a spreadsheet: two classes, not a regression (a fractional score would be one)."""
    from finetune.run.preflight import validate_config

    overrides = user_csv(train=labelled(["1.0", "0.0"] * 10))(tmp_path)
    lines = validate_config(make_cfg(*overrides))
    assert any(line.endswith("classes ['0', '1']") for line in lines), lines


@pytest.mark.parametrize("option", ["csv", "conll"])
def test_an_unreadable_file_is_one_line(option: str, make_cfg, tmp_path: Path, monkeypatch) -> None:
    """Permissions cannot stop root (CI), so the refusal the operating system would give is simulated."""
    from finetune.errors import UserError
    from finetune.run.preflight import validate_config

    path = csv_file(tmp_path)
    real_open, real_read = Path.open, Path.read_text

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return (real_read if kwargs.pop("_read", False) else real_open)(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: refuse(self, *a, _read=True, **k))
    with pytest.raises(UserError, match=r"^data.train_file cannot be read: .*train.csv \(Permission denied\)"):
        validate_config(make_cfg(f"data={option}", f"data.train_file={path}"))
