"""A finished run as ``eval.py``, ``predict.py`` and ``export.py`` find it: its saved config, its summary, its best
checkpoint, and the trained module rebuilt from them (no pretrained weights are read: the checkpoint holds all).

Every check here runs before any work, and none writes into the run: these commands only read what it made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from finetune.errors import UserError
from finetune.run.outcome import COMPLETED, read_summary, summary_damaged
from finetune.run.saved import check_no_links_out, read_saved_config

if TYPE_CHECKING:
    from finetune.models.base import FineTuneModule


@dataclass
class FinishedRun:
    """What a command needs from a run dir.

    Attributes:
        run_dir: the run's folder.
        config: the config it ran with (``.hydra/config.yaml``).
        summary: its ``metrics.json``.
        checkpoint: the checkpoint to use: the best one, or the ``ckpt_path`` the user named.
    """

    run_dir: Path
    config: DictConfig
    summary: dict[str, Any]
    checkpoint: Path

    @property
    def test_metrics(self) -> dict[str, float]:
        """The run's metrics of every test set (``<set>/<metric>``), as its summary recorded them."""
        return {k: v for k, v in (self.summary.get("metrics") or {}).items() if k.startswith("test")}

    def hyper_parameters(self) -> dict[str, Any]:
        """The module's saved hyperparameters (labels, problem type), read from the checkpoint (checksum checked)."""
        from finetune.trainer.checkpoints import read_checkpoint

        return dict(read_checkpoint(self.checkpoint).get("hyper_parameters") or {})


def open_run(run: str | None, ckpt_path: str | None, trust_run: bool = False) -> FinishedRun:
    """The run at ``run`` (its best checkpoint), or the run holding ``ckpt_path`` (that checkpoint).

    Raises:
        UserError: neither given; not a run dir; an unfinished run without ``ckpt_path``; no checkpoint.
    """
    if not run and not ckpt_path:
        raise UserError("give run=<run dir> (e.g. outputs/train/runs/<time>) or ckpt_path=<a .ckpt file of a run>")
    checkpoint = Path(str(ckpt_path)).expanduser().resolve() if ckpt_path else None
    if checkpoint is not None and not checkpoint.is_file():
        raise UserError(f"ckpt_path={ckpt_path} is not a file; give a .ckpt file from a run's checkpoints/ folder")
    run_dir = Path(str(run)).expanduser().resolve() if run else checkpoint.parent.parent
    where = f"run={run}" if run else f"ckpt_path={ckpt_path}: its run dir {run_dir}"
    if not run_dir.is_dir():
        raise UserError(f"{where} is not a folder; give the dir of a run (outputs/<task>/runs/<time>)")
    check_no_links_out(run_dir, where)
    config = read_saved_config(run_dir, where, trust_run)  # data, not code: the allow-list of targets
    if summary_damaged(run_dir):
        raise UserError(
            f"{where}: its metrics.json is damaged, so how the run ended is unknown; the run cannot be used"
        )
    summary = read_summary(run_dir) or {}
    if checkpoint is None:
        checkpoint = best_checkpoint(run_dir, summary, where)
        check_no_links_out(run_dir, where, (checkpoint,))
    return FinishedRun(run_dir, config, summary, checkpoint)


def best_checkpoint(run_dir: Path, summary: dict[str, Any], where: str) -> Path:
    """The run's best checkpoint, found by name in its ``checkpoints/`` (so a moved or copied run finds its own)."""
    status = summary.get("status") or "unfinished (no metrics.json)"
    if status != COMPLETED:
        raise UserError(
            f"{where} is {status}, not completed: finish it (python train.py resume={run_dir}), or name one of "
            f"its checkpoints with ckpt_path={run_dir}/checkpoints/<file>.ckpt"
        )
    recorded = summary.get("best_checkpoint")
    # By name in this dir's checkpoints/: the recorded absolute path may be another dir's once a run is copied.
    found = run_dir / "checkpoints" / Path(recorded).name if recorded else None
    if found is None or not found.is_file():
        raise UserError(
            f"{where} has no checkpoint (trained with checkpointing off, or its checkpoints/ were deleted); "
            "train it again with the default callbacks"
        )
    return found


def instantiate_data(config: DictConfig) -> Any:
    """The run's data module as it was configured (nothing is read until it is set up)."""
    from hydra.utils import instantiate

    return instantiate(config.data)


def trained_module(finished: FinishedRun, datamodule: Any = None) -> tuple[FineTuneModule, dict[str, Any]]:
    """The run's module with the checkpoint's weights, in eval mode, and the checkpoint itself.

    The network is built on the meta device and takes the checkpoint's tensors (``net_from_checkpoint``): no
    initialisation, no pretrained files read (an adapter checkpoint's frozen base excepted), and the checkpoint's
    checksum is verified on reading.
    """
    from hydra.utils import get_class, instantiate

    from finetune.adapters.state import RECORD
    from finetune.models.net_builder import check_materialised
    from finetune.trainer.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(finished.checkpoint)
    config, state = finished.config, checkpoint["state_dict"]
    module_class = get_class(config.model._target_)
    # An adapter checkpoint holds no base: the frozen base is loaded from the pretrained model, as the run did.
    weights = None if RECORD in checkpoint else {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    datamodule = datamodule if datamodule is not None else instantiate_data(config)
    try:
        net = module_class.net_from_checkpoint(config.model.net, checkpoint.get("hyper_parameters") or {}, weights)
        module = instantiate(config.model, net=net, optimizer=None, scheduler=None, **datamodule.module_kwargs)
        module.on_load_checkpoint(checkpoint)  # an adapter checkpoint gets its base (hash checked) filled in
        # assign: a meta-device network takes the checkpoint's tensors as they are (no copy)
        # (the filled-in state_dict: on_load_checkpoint replaced the entry ``state`` was read from)
        module.load_state_dict(checkpoint["state_dict"], assign=any(p.is_meta for p in module.parameters()))
        check_materialised(module)
    except (RuntimeError, ValueError) as error:
        raise UserError(
            f"checkpoint {finished.checkpoint} does not fit the run's model ({str(error).splitlines()[0][:160]})"
        ) from None
    return module.eval(), checkpoint
