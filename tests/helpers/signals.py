"""A callback for tests: send this process a signal at a chosen optimizer step (a crash or a cluster's notice).

Used as ``+callbacks.signal_at_step._target_=tests.helpers.signals.SignalAtStep``; it acts only when
``FINETUNE_TEST_SIGNAL_AT_STEP`` is set, so the same command (same run identity) can be killed and rerun.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from lightning.pytorch.callbacks import Callback


class SignalAtStep(Callback):
    """Sends ``$FINETUNE_TEST_SIGNAL`` (default SIGKILL) at the end of step ``$FINETUNE_TEST_SIGNAL_AT_STEP``."""

    def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        step = os.environ.get("FINETUNE_TEST_SIGNAL_AT_STEP")
        if step is not None and trainer.global_step == int(step):
            os.kill(os.getpid(), getattr(signal, os.environ.get("FINETUNE_TEST_SIGNAL", "SIGKILL")))
