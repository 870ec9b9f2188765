"""``hydra.run.dir=<a dir that holds a run>``: allowed only when the command resumes that unfinished run in place.

Checked by ``finetune.run.preflight.RunDirCheck`` before Hydra writes its config files into the dir. Torch-free.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from finetune.errors import UserError
from finetune.run.outcome import holds_run, read_status
from finetune.run.resume import disabled, explicit, run_identity, same_identity, unfinished


def refuse_existing_run(cfg: DictConfig, run_dir: Path) -> None:
    """Before Hydra writes into ``hydra.run.dir``: refuse a dir that holds a run this command would not continue
    in place (a completed or failed run, another config, ``resume=false``), since a new run would overwrite it.

    Raises:
        UserError: naming the run, its status, and what to do instead.
    """
    if not holds_run(run_dir):
        return
    setting = cfg.get("resume", "auto")
    if explicit(setting):
        same = Path(setting).expanduser().resolve() == run_dir.resolve()
        hint = f"pass resume={setting} alone (this command gets its own dir)" if same else "give a new hydra.run.dir"
        raise UserError(f"hydra.run.dir={run_dir} already holds a run and resume={setting} names a run: {hint}")
    status = read_status(run_dir) or "unfinished"
    if not disabled(setting) and unfinished(run_dir, run_identity(cfg)):
        return  # the same command again: it resumes this run in place
    why = (
        "resume=false"
        if disabled(setting)
        else f"it is {status}"
        if same_identity(run_dir, run_identity(cfg))
        else f"it is a {status} run of another config"
    )
    raise UserError(
        f"hydra.run.dir={run_dir} already holds a run ({why}): a new run would overwrite it; give a new "
        f"hydra.run.dir, or pass resume={run_dir} to train that run further"
    )
