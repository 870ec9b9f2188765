"""``predict.py``'s and ``export.py``'s own settings, checked by ``train.py``'s preflight rules before a run is
opened: no key nothing reads (``+key=1``), every value in its range, the trainer built as the command will build it
(``trainer.precision=bf32``, ``trainer.devices=abc``). Each mistake is one line, exit status 2."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from finetune.errors import UserError

# The settings of each command (conf/<command>.yaml).
SHARED_KEYS = frozenset({"paths", "task_name", "run", "ckpt_path", "trust_run", "verbose"})
COMMAND_KEYS = {
    "predict": SHARED_KEYS | {"trainer", "input", "input_format", "output", "text_column", "id_column", "batch_size"},
    "export": SHARED_KEYS | {"out", "merge"},
}
BOOLEANS = ("trust_run", "merge", "verbose")


def check_command_settings(cfg: DictConfig, command: str) -> None:
    """Raise ``UserError`` for the first setting of ``command`` that nothing reads or that is out of range, or a
    trainer that does not build.

    Raises:
        UserError: naming the setting and what it takes.
    """
    from finetune.run.objects import check_trainer
    from finetune.run.values import check_keys, check_ranges

    check_keys(cfg, set(COMMAND_KEYS[command]))
    check_ranges(cfg)
    for name in BOOLEANS:
        if name in cfg and not isinstance(cfg[name], bool):
            raise UserError(f"{name} must be true or false, got {cfg[name]!r}")
    if "batch_size" in cfg and not _whole_at_least_one(cfg.batch_size):
        raise UserError(f"batch_size must be a whole number >= 1 (rows per forward pass), got {cfg.batch_size!r}")
    if "trainer" in cfg:
        check_trainer(cfg)


def _whole_at_least_one(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
