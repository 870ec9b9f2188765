"""Callbacks for tests: send this process a signal at a chosen optimizer step (a crash or a cluster's notice),
or hold it there while the test starts another command.

Used as ``+callbacks.signal_at_step._target_=tests.helpers.signals.SignalAtStep`` (or ``WaitAtStep``); each acts
only when its environment variable is set, so the same command (same run identity) can be killed and rerun.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback


class SignalAtStep(Callback):
    """Sends ``$FINETUNE_TEST_SIGNAL`` (default SIGKILL) at the end of step ``$FINETUNE_TEST_SIGNAL_AT_STEP``."""

    def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        step = os.environ.get("FINETUNE_TEST_SIGNAL_AT_STEP")
        if step is not None and trainer.global_step == int(step):
            os.kill(os.getpid(), getattr(signal, os.environ.get("FINETUNE_TEST_SIGNAL", "SIGKILL")))


class WaitAtStep(Callback):
    """Holds the run at the end of step ``$FINETUNE_TEST_WAIT_AT_STEP``: writes ``$FINETUNE_TEST_WAIT_DIR/waiting``
    and waits (two minutes at most) until the test creates ``go`` there, so another command can meet a live run."""

    def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        step = os.environ.get("FINETUNE_TEST_WAIT_AT_STEP")
        if step is None or trainer.global_step != int(step):
            return
        folder = Path(os.environ["FINETUNE_TEST_WAIT_DIR"])
        (folder / "waiting").write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while not (folder / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.1)


class CrashAtStep(Callback):
    """Raises a ``RuntimeError`` (not a project error) at the end of step 1 whose message holds ``api_key``: a
    crash whose traceback would show a secret."""

    def __init__(self, api_key: str = "") -> None:
        self.api_key = api_key

    def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if trainer.global_step == 1:
            raise RuntimeError(f"simulated crash while talking to a server with key {self.api_key}")


class SignalAtTestBatch(Callback):
    """Sends ``$FINETUNE_TEST_SIGNAL`` (default SIGTERM) at the end of the first test batch, when
    ``$FINETUNE_TEST_SIGNAL_IN_TEST`` is set: a cluster's notice while ``eval.py`` tests."""

    def on_test_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if os.environ.get("FINETUNE_TEST_SIGNAL_IN_TEST"):
            os.kill(os.getpid(), getattr(signal, os.environ.get("FINETUNE_TEST_SIGNAL", "SIGTERM")))
