"""Console scripts. ``finetune-train`` is ``python train.py`` for an installed package."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from finetune.errors import UserError


def config_dir() -> str:
    """The ``conf/`` folder: ``$FINETUNE_CONF``, else ``./conf``, else the one beside the source checkout."""
    candidates = [os.environ.get("FINETUNE_CONF"), "conf", Path(__file__).resolve().parents[2] / "conf"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train.yaml").is_file():
            return str(Path(candidate).resolve())
    raise SystemExit("error: no conf/train.yaml found; run from the project folder or set FINETUNE_CONF")


def run_task(cfg) -> float | None:
    """The Hydra task: train, and turn a ``UserError`` into one line on stderr and exit status 2."""
    from finetune.train import main  # imported here so --help and --cfg never load torch

    try:
        return main(cfg)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def train_cli() -> None:
    """Entry point of the ``finetune-train`` console script."""
    import hydra

    hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")(run_task)()
