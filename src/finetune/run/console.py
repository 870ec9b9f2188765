"""What the libraries may print. By default (``verbose=false``) their progress bars, banners and known-harmless
warnings stay off, so a run's output is the project's own lines; ``verbose=true`` shows everything again."""

from __future__ import annotations

import logging
import os
import warnings

# Lightning's and Fabric's INFO banners (devices found, seed set, tips, "Loading `train_dataloader`", "Restoring
# states") and the per-epoch stop line, which the run's own lines replace.
CHATTY_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.seed",
    "lightning.pytorch.accelerators.cuda",
)
# Warnings that say nothing a user of this project can act on: each was read and judged harmless here.
HARMLESS_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's own use of a torch API
    r".*does not have many workers which may be a bottleneck",  # num_workers=0 is the measured default on CPU
    r".*The number of training batches \(\d+\) is smaller than the logging interval",
    r".*You are using a custom batch sampler",  # the project's length-grouping sampler, resumable on purpose
    r".*`is_gradient_checkpointing` is deprecated",  # peft asking transformers 5 with the old name
)


def quiet_libraries(verbose: bool) -> None:
    """Turn the libraries' own progress bars, banners and ``HARMLESS_WARNINGS`` off unless ``verbose``; errors and
    other warnings still show."""
    if verbose:
        return
    os.environ.setdefault("WANDB_SILENT", "true")  # wandb's banner and its end-of-run history table
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    import datasets
    import transformers

    datasets.disable_progress_bars()  # "Saving the dataset", "Map": three bars per split
    transformers.utils.logging.disable_progress_bar()  # "Loading weights"
    # What transformers warns about when a fine-tune loads is expected (the new head's weights are not in the
    # checkpoint); its errors still show.
    transformers.utils.logging.set_verbosity_error()
