"""What a run prints while it trains: a bar on a terminal, a line every N steps elsewhere, a line per validation."""

from __future__ import annotations

import logging
import sys

import lightning.pytorch as pl
import pytest
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.demos.boring_classes import BoringModel

from finetune.trainer.progress import LineProgress, ValidationLog, progress_bar


@pytest.mark.parametrize(("terminal", "kind"), [(True, TQDMProgressBar), (False, LineProgress)])
def test_the_bar_on_a_terminal_lines_elsewhere(monkeypatch: pytest.MonkeyPatch, terminal: bool, kind: type) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    assert type(progress_bar(refresh_rate=1, every_n_steps=3)) is kind


class LoggedModel(BoringModel):
    """Lightning's boring model, logging its validation loss as the project's modules name it."""

    def validation_step(self, batch, batch_idx):
        loss = super().validation_step(batch, batch_idx)["x"]
        self.log("val/loss", loss)
        return loss


def test_lines_every_n_steps_and_one_per_validation(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_train_batches=6,
        limit_val_batches=2,
        num_sanity_val_steps=2,  # the sanity check prints nothing
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[LineProgress(every_n_steps=4), ValidationLog()],
    )
    with caplog.at_level(logging.INFO, logger="finetune.train"):
        trainer.fit(LoggedModel())
    lines = [record.getMessage() for record in caplog.records if record.name == "finetune.train"]
    assert [line.split(" |")[0] for line in lines] == [
        "epoch 1/2 step 4/12",
        "epoch 1/2 step 6/12",  # the validation at the end of epoch 1
        "epoch 2/2 step 8/12",
        "epoch 2/2 step 12/12",  # its validation's line only: the step line would repeat it
    ]
    assert all(" | lr " in line and "samples/s" in line for line in lines)
    assert [line.count("val/loss ") for line in lines] == [0, 1, 0, 1]
