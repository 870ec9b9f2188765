"""Real runs: the packaged MiniLM fine-tuned on real text (slow; CI runs them)."""

from __future__ import annotations

import pytest

from finetune.train import train


@pytest.mark.slow
def test_default_run_reaches_the_accuracy_threshold(make_cfg) -> None:
    """``python train.py``'s config, unchanged but for the logger and progress bar."""
    cfg = make_cfg("logger=csv", "++callbacks.progress_bar=null", fast=False)
    summary = train(cfg)
    assert summary["metrics"]["test/acc"] >= 0.85, summary["metrics"]
