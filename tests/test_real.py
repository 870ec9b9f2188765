"""Real runs: the packaged MiniLM fine-tuned on real text (slow; CI runs them)."""

from __future__ import annotations

import pytest

from finetune.train import train
from tests.helpers.commands import drop_run

DEFAULT_RUN_CHECKPOINTS_MB = 400  # what a completed default run may keep (README, "Where a run goes")


@pytest.mark.slow
def test_default_run_reaches_the_accuracy_threshold(make_cfg) -> None:
    """``python train.py``'s config, unchanged but for the logger and progress bar, at seeds 42, 1 and 2: mean test
    accuracy at least 0.85 and none below 0.80.

    The test set has 108 reviews, so one review is 0.009 of accuracy and one run's score moves a lot with the seed:
    measured on this 2-core CPU, seed 42 -> 0.824 (its validation accuracy was 0.898), 1 -> 0.880, 2 -> 0.880
    (mean 0.861), about 2 minutes each, in fp32; the same three scores in bf16-mixed (``trainer.precision=auto`` on
    this CPU since 2026-11-29), 85-110 s each. One seed alone would test the seed more than the pipeline.
    """
    accuracies = []
    for seed in (42, 1, 2):
        cfg = make_cfg("logger=csv", "++callbacks.progress_bar=null", f"seed={seed}", fast=False)
        summary = train(cfg)
        accuracies.append(summary["metrics"]["test/acc"])
        # The disk budget the README states: best weights (87 MB) and last.ckpt (260 MB); it was 781 MB.
        assert summary["checkpoints_kept_mb"] < DEFAULT_RUN_CHECKPOINTS_MB, summary["checkpoints_kept_mb"]
        drop_run(cfg)
    assert sum(accuracies) / len(accuracies) >= 0.85, accuracies
    assert min(accuracies) >= 0.80, accuracies
