"""Every private Lightning and torch name this project touches, each behind one small function.

An upgrade that renames or removes one breaks here, and ``tests/test_compat.py`` (one test per function) says
which. Nothing else in the project imports a private name of Lightning or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import Dataset
    from torchmetrics import Metric


def restore_loader_position(trainer: pl.Trainer) -> None:
    """Hand the train loader the position its checkpoint saved (``FitLoop._load_combined_loader_states``).

    Lightning restores it only when it builds the loader after the loops; reading
    ``trainer.estimated_stepping_batches`` in ``configure_optimizers`` builds it before, so the restore is lost.
    """
    trainer.fit_loop._load_combined_loader_states()


def materialize(value: Any) -> Any:
    """Load tensors that a lazy checkpoint load (Lightning's FSDP) left as placeholders."""
    from lightning.fabric.utilities.load import _materialize_tensors

    return _materialize_tensors(value)


def metric_state_names(metric: Metric) -> list[str]:
    """The names of a torchmetrics metric's states (``Metric._defaults``)."""
    return list(metric._defaults)


def cpu_has_amx() -> bool:
    """The CPU has AMX tile units (``torch.cpu._is_amx_tile_supported``): bf16 matmuls run fast on it."""
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def is_compiled(module: torch.nn.Module) -> bool:
    """``module.compile()`` was called (it sets ``nn.Module._compiled_call_impl``)."""
    return getattr(module, "_compiled_call_impl", None) is not None


def set_ddp_child_command(command: Callable[[int], tuple[list[str], str]]) -> None:
    """Make Lightning's subprocess DDP launcher start rank ``i`` with ``command(i)`` (its Hydra hook,
    ``_hydra_subprocess_cmd``, in both the Fabric and the Trainer launcher)."""
    from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
    from lightning.pytorch.strategies.launchers import subprocess_script as pytorch_launcher

    fabric_launcher._hydra_subprocess_cmd = command
    pytorch_launcher._hydra_subprocess_cmd = command


def unrepeated_sampler(dataset: Dataset, num_replicas: int, rank: int) -> Any:
    """A distributed sampler that gives each example to exactly one process, without the padding repeats of
    torch's ``DistributedSampler`` (Lightning's ``UnrepeatedDistributedSampler``, from an internal module)."""
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    return UnrepeatedDistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)


def lightning_precisions() -> set[str]:
    """Every ``trainer.precision`` value Lightning accepts (``lightning.fabric.connector._PRECISION_INPUT``)."""
    from typing import get_args

    from lightning.fabric.connector import _PRECISION_INPUT

    return {str(v) for group in get_args(_PRECISION_INPUT) for v in get_args(group)}


@contextmanager
def ctrl_c_as_keyboard_interrupt(trainer: pl.Trainer) -> Iterator[None]:
    """Let Ctrl-C leave ``trainer.fit``/``test`` as ``KeyboardInterrupt``: after its graceful shutdown Lightning
    calls ``sys.exit(1)`` (``lightning.pytorch.trainer.call``) and ignores SIGINT from then on, so the run could
    not say it was interrupted, nor a multirun write its report."""
    import signal

    try:
        yield
    except SystemExit as stop:
        if stop.code != 1 or not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt from stop


def drop_wandb_anonymous(logger: Any) -> None:
    """Lightning's ``WandbLogger`` always passes ``anonymous=None`` to ``wandb.init``, which wandb >= 0.19 answers
    with a deprecation warning on every run; leave the setting out before the run starts."""
    logger._wandb_init.pop("anonymous", None)
