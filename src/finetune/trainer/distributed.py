"""Several processes, one run: who is rank 0, what Lightning's DDP launcher runs under Hydra, and the batch
arithmetic that keeps the global batch fixed when the number of devices changes."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig, open_dict

from finetune.errors import UserError

log = logging.getLogger(__name__)


def launcher_rank() -> str | None:
    """The global rank an external launcher gave this process (torchrun's ``RANK``, srun's ``SLURM_PROCID``), or
    None when none did."""
    return next((os.environ[key] for key in ("RANK", "SLURM_PROCID") if key in os.environ), None)


def is_rank_zero() -> bool:
    """True in the process that owns the run dir: global rank 0 (``launcher_rank``, or Lightning's LOCAL_RANK and
    NODE_RANK for the processes its launcher starts)."""
    rank = launcher_rank()
    if rank is not None:
        return int(rank) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def rank_tag() -> str:
    """``rank<N>`` for this process's files (N: its rank as the environment tells it)."""
    rank = launcher_rank()
    if rank is not None:
        return f"rank{rank}"
    return f"rank{os.environ.get('NODE_RANK', 0)}-{os.environ.get('LOCAL_RANK', 0)}"


LAUNCH_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@contextmanager
def one_job_of_processes() -> Iterator[None]:
    """Undo what a DDP job leaves in this process, so the next job of a multirun starts its own processes.

    Lightning leaves the process group open after fit and test, and its launcher writes ``LOCAL_RANK`` and the
    other launch variables into this process's environment; with ``LOCAL_RANK`` set, the next job would think a
    launcher like torchrun had started its ranks and wait for ranks that never come.
    """
    before = {key: os.environ.get(key) for key in LAUNCH_VARIABLES}
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def device_count(trainer: DictConfig) -> int:
    """Processes per node that ``trainer.devices`` asks for (``auto``/-1: every GPU, or one CPU process)."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, (list, tuple)) or (hasattr(devices, "__len__") and not isinstance(devices, str)):
        return len(devices)
    if str(devices) in ("auto", "-1"):
        import torch

        accelerator = str(trainer.get("accelerator", "auto"))
        gpus = torch.cuda.device_count() if accelerator in ("auto", "gpu", "cuda") else 0
        return max(gpus, 1)
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    return int(devices)


def apply_global_batch(cfg: DictConfig) -> str:
    """Derive ``data.batch_size`` and ``trainer.accumulate_grad_batches`` from ``global_batch_size`` (if set),
    before anything is built, and return a line describing the effective batch.

    global = micro × devices × nodes × accumulation, with micro = ``micro_batch_size`` (default
    ``data.batch_size``); a global batch that this does not divide is a ``UserError``.
    """
    data, trainer = cfg.data, cfg.trainer
    world = device_count(trainer) * int(trainer.get("num_nodes", 1) or 1)
    target = cfg.get("global_batch_size")
    if target:
        micro = int(cfg.get("micro_batch_size") or data.batch_size)
        if micro < 1 or int(target) % (micro * world):
            raise UserError(
                f"global_batch_size={target} is not a multiple of micro_batch_size ({micro}) × "
                f"{world} process(es); pick a global batch divisible by {micro * world}, or another micro batch"
            )
        with open_dict(cfg):
            data.batch_size = micro
            trainer.accumulate_grad_batches = int(target) // (micro * world)
    accumulate = int(trainer.get("accumulate_grad_batches", 1) or 1)
    effective = int(data.batch_size) * world * accumulate
    return f"effective batch {effective} = {data.batch_size} per device × {world} process(es) × {accumulate} steps"


def use_job_command_for_ddp_children(output_dir: str, ckpt_path: str | None = None, resumes: bool = True) -> None:
    """Make Lightning's DDP launcher start the other ranks as single runs of this job, in ``output_dir``, from
    rank 0's checkpoint ``ckpt_path`` (what it resumes from, or None).

    Lightning's own command repeats ``sys.argv`` and ``hydra.run.dir``: inside a multirun that relaunches the whole
    sweep in each child (lightning-hydra-template #393), and after a resume it points at a dir Hydra made but this
    run left. This job's overrides and its real output dir avoid both. The children get rank 0's checkpoint
    outright (and ``resume=false``): deciding again could differ (a rank that loads nothing hangs the others).
    ``resumes``: False for a command without a ``resume`` setting (``predict.py``).
    """
    from finetune.trainer.compat import set_ddp_child_command

    def child_command(local_rank: int) -> tuple[list[str], str]:
        return job_command(local_rank, output_dir, ckpt_path, resumes)

    set_ddp_child_command(child_command)


def job_command(
    local_rank: int, output_dir: str, ckpt_path: str | None = None, resumes: bool = True
) -> tuple[list[str], str]:
    """``python train.py <this job's overrides> hydra.run.dir=<output_dir> ...`` and the folder to run it in."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hydra_cfg = HydraConfig.get()
    spec: Any = getattr(__main__, "__spec__", None)
    script = [sys.executable, "-m", spec.name] if spec is not None else [sys.executable, to_absolute_path(sys.argv[0])]
    replaced = ("hydra", "resume", "ckpt_path")
    overrides = [o for o in hydra_cfg.overrides.task if not o.split("=", 1)[0].lstrip("+~").startswith(replaced)]
    command = [
        *script,
        *overrides,
        *(["resume=false"] if resumes else []),
        f'ckpt_path="{ckpt_path}"' if ckpt_path else "ckpt_path=null",
        f'hydra.run.dir="{output_dir}"',
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",  # its log file: <run dir>/<task>_rank1.log
        "hydra.output_subdir=null",  # only rank 0 saves .hydra/
    ]
    return command, get_original_cwd()


def is_fsdp(strategy: Any) -> bool:
    """Whether a Lightning strategy shards the model with FSDP."""
    from lightning.pytorch.strategies import FSDPStrategy

    return isinstance(strategy, FSDPStrategy)


def fsdp_strategy(
    layers: list[str],
    sharding_strategy: str = "FULL_SHARD",
    activation_checkpointing: bool = True,
    cpu: bool = False,
    **kwargs: Any,
) -> Any:
    """Lightning's ``FSDPStrategy`` with each of ``layers`` (class paths) one FSDP unit and, if asked,
    checkpointing its activations. ``cpu=True`` runs it on CPU processes (gloo), as the tests prove it: torch's
    FSDP works there, but Lightning refuses an ``FSDPStrategy`` without a GPU (its check is on the exact class)."""
    from hydra.utils import get_class
    from lightning.pytorch.strategies import FSDPStrategy

    classes = {get_class(name) for name in layers}
    strategy_class = _cpu_fsdp_strategy_class() if cpu else FSDPStrategy
    return strategy_class(
        auto_wrap_policy=classes,
        activation_checkpointing_policy=classes if activation_checkpointing else None,
        sharding_strategy=sharding_strategy,
        use_orig_params=True,  # parameters keep their names: weight decay, layer decay and head lr find them
        **({"process_group_backend": "gloo"} if cpu else {}),
        **kwargs,
    )


def _cpu_fsdp_strategy_class() -> type:
    """``FSDPStrategy`` on CPU processes. A subclass escapes Lightning's GPU check (made on the exact class); the
    wrap names the CPU as FSDP's device (Lightning passes the device index, None on a CPU, and FSDP then looks
    for an accelerator); full state dicts are gathered without ``offload_to_cpu``, which on a CPU frees the
    gathered parameters before they are copied (a segmentation fault in torch 2.13)."""
    import torch
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, OptimStateKeyType, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    class CPUFSDPStrategy(FSDPStrategy):
        def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
            return FSDP(
                module=model,
                cpu_offload=self.cpu_offload,
                mixed_precision=self.mixed_precision_config,
                sharding_strategy=self.sharding_strategy,
                device_id=torch.device("cpu"),
                **self.kwargs,
            )

        def _full_state(self) -> Any:
            return FSDP.state_dict_type(
                self.model,
                StateDictType.FULL_STATE_DICT,
                FullStateDictConfig(offload_to_cpu=False, rank0_only=True),
                FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=True),
            )

        def lightning_module_state_dict(self) -> dict[str, Any]:
            with self._full_state():
                return self.model.state_dict()

        def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
            optimizer = getattr(optimizer, "_optimizer", optimizer)  # Lightning's wrapper
            with self._full_state():
                state = FSDP.optim_state_dict(self.model, optimizer)
                if self.global_rank == 0:  # the standard layout, as Lightning stores it
                    state = FSDP.rekey_optim_state_dict(state, OptimStateKeyType.PARAM_ID, self.model)
                return state

    return CPUFSDPStrategy
