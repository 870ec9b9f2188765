"""``resume=<run dir>`` must prove that this config fits the run before it claims it: the same data, network and
task (the label set is compared by the checkpoint's signature in the preflight), and, for a completed run, a
budget that goes on. Otherwise a forgotten ``data=...`` retrains the run on other data, and a smaller
``trainer.max_epochs`` trains nothing yet rewrites the finished run's record. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from finetune.errors import UserError
from finetune.run.outcome import COMPLETED
from finetune.run.resume import ResumePlan, explicit, identity_view
from finetune.run.saved import read_saved_config

# Settings of how data is loaded, not which data: they may change between legs.
LOADER_KEYS = frozenset({"num_workers", "pin_memory", "persistent_workers", "prefetch_factor"})
# Network settings of how it runs, not what it is.
RUNTIME_KEYS = frozenset({"compile", "gradient_checkpointing", "attn_implementation"})
BUDGETS = ("max_epochs", "max_steps")


def check_resume_fits(cfg: DictConfig, plan: ResumePlan | None) -> None:
    """Raise ``UserError`` when ``resume=<run dir>`` names a run this config does not continue.

    Raises:
        UserError: a data, network or task setting differs from the run's, or a completed run's budget does not
            grow (no epoch or step would be trained).
    """
    setting = cfg.get("resume")
    if plan is None or plan.continued is None or not explicit(setting):
        return  # resume=auto continues only a run of this very config
    where = f"resume={setting}"
    saved = read_saved_config(Path(plan.continued), where, trust_run=True)  # compared, never instantiated
    theirs, ours = identity_view(saved), identity_view(cfg)
    for section, ignored in (("data", LOADER_KEYS), ("model", RUNTIME_KEYS), ("task", frozenset())):
        key, there, here = _first_difference(theirs.get(section), ours.get(section), section, ignored)
        if key is not None:
            raise UserError(
                f"{where}: {key} is {here!r} here but {there!r} in the run; resume continues the same training, so "
                f"give the run's settings (its .hydra/overrides.yaml), or start a new run (resume=false)"
            )
    if plan.status == COMPLETED:
        _check_budget_grows(theirs.get("trainer") or {}, ours.get("trainer") or {}, where)


def _check_budget_grows(theirs: dict[str, Any], ours: dict[str, Any], where: str) -> None:
    """A completed run trains further only with a larger ``max_epochs`` or ``max_steps`` and neither smaller."""
    old = {name: _limit(theirs.get(name)) for name in BUDGETS}
    new = {name: _limit(ours.get(name)) for name in BUDGETS}
    if any(new[n] < old[n] for n in BUDGETS) or all(new[n] == old[n] for n in BUDGETS):
        shown = ", ".join(f"trainer.{n}={theirs.get(n)}" for n in BUDGETS)
        raise UserError(
            f"{where}: the run completed with {shown}; this command's budget trains nothing more; give a larger "
            f"trainer.max_epochs (or max_steps) to train it further, or use eval.py to test it again"
        )


def _limit(value: Any) -> float:
    """A budget as a number: null and -1 (no limit) are infinite."""
    return float("inf") if value is None or value == -1 else float(value)


def _first_difference(there: Any, here: Any, prefix: str, ignored: frozenset[str]) -> tuple[str | None, Any, Any]:
    """The first dotted key where two plain containers differ (``ignored`` names at any depth left out)."""
    if isinstance(there, dict) and isinstance(here, dict):
        for name in sorted(set(there) | set(here)):
            if name in ignored:
                continue
            found = _first_difference(there.get(name), here.get(name), f"{prefix}.{name}", ignored)
            if found[0] is not None:
                return found
        return None, None, None
    return (None, None, None) if there == here else (prefix, there, here)
