"""GLUE gates: the packaged MiniLM fine-tuned on local GLUE data reaches known dev-set scores (slow; CI runs them).

GLUE hides its test labels, so the dev set is the test set (``test/...``) and validation is carved from train.
Both gates train one epoch at a constant learning rate of 5e-5 with length-grouped batches of 32: on these few
hundred steps the default linear schedule (10% warmup, then decay to 0) falls short of both thresholds
(SST-2 0.828 accuracy, STS-B 0.694 Pearson, seed 42), the constant rate clears them.
"""

from __future__ import annotations

import pytest

from finetune.train import train
from tests.conftest import SHARED_DATA
from tests.helpers.commands import drop_run

SST2 = SHARED_DATA / "glue" / "SST-2"
STSB = SHARED_DATA / "glue" / "STS-B"

# One epoch, constant lr, length-grouped batches; no progress bar, CSV logging only.
RECIPE = [
    "trainer.max_epochs=1",
    "data.group_by_length=true",
    "scheduler=constant",
    "optimizer.lr=5e-5",
    "logger=csv",
    "++callbacks.progress_bar=null",
    "++trainer.enable_progress_bar=false",
]


@pytest.mark.slow
def test_sst2_gate_minilm_reaches_084_accuracy(make_cfg) -> None:
    """8,000 SST-2 training sentences, one epoch: at least 0.84 accuracy on the full dev set (872 sentences),
    averaged over the default seed and seeds 1 and 2; no seed below 0.82.

    Why three seeds: one run's dev accuracy moves by about ±0.01 around 0.84 with the seed (which also draws the
    8,000 sentences and the validation split) and with anything that changes the dropout stream. Measured on this
    2-core CPU with the current code: seed 42 -> 0.834, 1 -> 0.851, 2 -> 0.842, 3 -> 0.848 (mean of 42, 1, 2:
    0.842) in fp32; in bf16-mixed (what ``trainer.precision=auto`` picks on CPUs with bf16 instructions, as
    this one has since 2026-11-29) 0.834, 0.850, 0.842 (mean 0.842). Before the loaders got their own random
    generator (so that resumed runs are exact) seed 42 gave 0.845: the same recipe, another dropout stream.
    A plain PyTorch loop reaches 0.843 with 8,192 sentences.
    The linear schedule with 10% warmup falls short (0.828, seed 42). Wall time about 100 s per seed alone.
    ``max_train_samples`` takes the first 8,000 of the shuffled train split, after validation (10%) is carved
    from it. With one epoch there is one validation and one checkpoint to test, so validation is cut to 16
    batches (1,024 of its 6,735 sentences): it only feeds the checkpoint callback.
    """
    accuracies = []
    for seed in (42, 1, 2):
        cfg = make_cfg(
            "data=sst2",
            f"data.data_dir={SST2}",
            "data.max_train_samples=8000",
            "++trainer.limit_val_batches=16",
            f"seed={seed}",
            *RECIPE,
            fast=False,
        )
        summary = train(cfg)
        drop_run(cfg)
        assert summary["global_step"] == 250, summary  # 8,000 / 32: every sentence seen once
        accuracies.append(summary["metrics"]["test/acc"])
    assert sum(accuracies) / len(accuracies) >= 0.84, accuracies
    assert min(accuracies) >= 0.82, accuracies


@pytest.mark.slow
def test_stsb_gate_minilm_reaches_075_pearson(make_cfg) -> None:
    """The full STS-B training set (5,749 pairs less the 575 carved for validation), one epoch: Pearson at least
    0.75 on the full dev set (1,500 pairs).

    Measured on this 2-core CPU: constant lr 5e-5 -> Pearson 0.784 (seed 42, twice: the CLI and this test) and
    0.800 (seed 1) in fp32, 0.787 (seed 42) in bf16-mixed; the linear schedule with 10% warmup -> 0.694 (seed 42,
    fails). Wall time: 99 s for the whole test with the machine otherwise quiet (up to 8 minutes when other jobs
    shared its two cores). The threshold stays at 0.75: one epoch at the constant rate clears it by 0.03-0.05,
    so no second epoch is needed.
    """
    cfg = make_cfg("data=stsb", f"data.data_dir={STSB}", *RECIPE, fast=False)
    summary = train(cfg)
    metrics = summary["metrics"]
    assert summary["global_step"] == 162, summary  # ceil(5,174 / 32)
    assert metrics["test/pearson"] >= 0.75, metrics
