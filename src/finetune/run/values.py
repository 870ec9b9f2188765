"""Every setting inside its range, and every key a setting of what it configures, before anything is built.

Two kinds of check, each by rule rather than by example, so a setting added later is covered too:

- ``check_ranges``: a setting named ``patience``, ``lr``, ``gradient_clip_val`` ... anywhere in the config
  (callbacks, scheduler, optimizer, trainer) must lie in that name's range (``RANGES``).
- ``check_keys``: each ``_target_`` node holds only arguments its target accepts, and the top level only the
  keys ``conf/train.yaml`` declares (``+foo=1`` would be ignored silently).

Torch-free: Hydra imports ``finetune.run.preflight`` before a job starts.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from finetune.errors import UserError

Rule = tuple[Callable[[Any], bool], str]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional(rule: Rule) -> Rule:
    check, text = rule
    return (lambda v: v is None or check(v)), f"{text} (or null)"


POSITIVE: Rule = (lambda v: _number(v) and v > 0, "a finite number > 0")
NON_NEGATIVE: Rule = (lambda v: _number(v) and v >= 0, "a finite number >= 0")
FRACTION: Rule = (lambda v: _number(v) and 0 < v < 1, "a number between 0 and 1 (exclusive)")
RATIO: Rule = (lambda v: _number(v) and 0 <= v <= 1, "a number from 0 to 1")
PROBABILITY: Rule = (lambda v: _number(v) and 0 <= v < 1, "a number >= 0 and < 1")
COUNT: Rule = (lambda v: _integer(v) and v >= 0, "an integer >= 0")
AT_LEAST_ONE: Rule = (lambda v: _integer(v) and v >= 1, "an integer >= 1")
BETAS: Rule = (
    lambda v: isinstance(v, (list, tuple, ListConfig)) and len(v) == 2 and all(PROBABILITY[0](b) for b in v),
    "two numbers >= 0 and < 1, e.g. [0.9, 0.999]",
)
INTERVAL: Rule = (lambda v: _number(v) and v > 0 and (v <= 1 or float(v).is_integer()), "a fraction of an epoch "
                  "in (0, 1] or a whole number of batches >= 1")  # fmt: skip

# Setting name -> its range, wherever the setting appears (hydra's own node aside).
RANGES: dict[str, Rule] = {
    "lr": POSITIVE,
    "max_lr": POSITIVE,
    "head_lr": _optional(POSITIVE),
    "weight_decay": NON_NEGATIVE,
    "eps": POSITIVE,
    "momentum": PROBABILITY,
    "dampening": PROBABILITY,
    "alpha": PROBABILITY,
    "betas": BETAS,
    "layer_decay": _optional((lambda v: _number(v) and 0 < v <= 1, "a number > 0 and <= 1")),
    "warmup_ratio": RATIO,
    "warmup_steps": _optional(COUNT),
    "num_cycles": POSITIVE,
    "power": POSITIVE,
    "factor": FRACTION,
    "patience": COUNT,
    "min_delta": NON_NEGATIVE,
    "gradient_clip_val": _optional(NON_NEGATIVE),
    "val_check_interval": _optional(INTERVAL),
    "log_every_n_steps": AT_LEAST_ONE,
    "check_val_every_n_epoch": _optional(AT_LEAST_ONE),
    "every_n_train_steps": _optional(COUNT),
    "every_n_epochs": _optional(COUNT),
    "save_top_k": (lambda v: _integer(v) and v >= -1, "an integer >= -1 (-1: keep all)"),
    "num_sanity_val_steps": (lambda v: _integer(v) and v >= -1, "an integer >= -1 (-1: the whole set)"),
    "label_smoothing": PROBABILITY,
    "non_finite_window": AT_LEAST_ONE,
    "non_finite_max_skipped": PROBABILITY,
    "val_fraction": FRACTION,
    "test_fraction": FRACTION,
    "max_train_samples": _optional(AT_LEAST_ONE),
    "max_eval_samples": _optional(AT_LEAST_ONE),
    "num_workers": COUNT,
    "hidden_dropout_prob": PROBABILITY,
    "attention_probs_dropout_prob": PROBABILITY,
    "classifier_dropout": _optional(PROBABILITY),
}
for _limit in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "overfit_batches"):
    RANGES[_limit] = _optional(NON_NEGATIVE)


def check_ranges(cfg: DictConfig) -> None:
    """Raise ``UserError`` for the first setting outside its range, naming its full key and the range."""
    for key, value in _leaves(OmegaConf.to_container(_job(cfg), resolve=True)):
        rule = RANGES.get(key.rsplit(".", 1)[-1])
        if rule is not None and not rule[0](value):
            raise UserError(f"{key} must be {rule[1]}, got {value!r}")


def check_keys(cfg: DictConfig, top_level: set[str]) -> None:
    """Raise ``UserError`` for a key nothing reads: at the top level (not in ``top_level``), or an argument the
    node's ``_target_`` does not take (a typo, or ``+trainer.foo=1``)."""
    unknown = sorted(set(cfg) - top_level - {"hydra"})
    if unknown:
        raise UserError(f"{unknown[0]} is not a setting{_close(unknown[0], top_level)}; the top-level settings are "
                        f"{sorted(top_level)} (tags=[...] holds notes)")  # fmt: skip
    for key, node in _target_nodes(OmegaConf.to_container(_job(cfg), resolve=True)):
        accepted = _arguments(node["_target_"])
        if accepted is None:  # the target takes **kwargs, or cannot be imported (its own check says so)
            continue
        for name in node:
            if not name.startswith("_") and name not in accepted:
                hint = _close(name, accepted)
                raise UserError(f"{key}.{name} is not a setting of {node['_target_']}{hint}; "
                                f"its settings are {sorted(accepted)}")  # fmt: skip


def _job(cfg: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), node


def _target_nodes(node: Any, prefix: str = "") -> Iterator[tuple[str, dict]]:
    if not isinstance(node, dict):
        return
    if isinstance(node.get("_target_"), str):
        yield prefix.rstrip(".") or "<root>", node
    for key, value in node.items():
        yield from _target_nodes(value, f"{prefix}{key}.")


def _arguments(target: str) -> set[str] | None:
    """The keyword arguments ``target`` accepts; None when it accepts any keyword (or cannot be imported here).

    A project class's ``**kwargs`` are its base class's arguments (``**common``), so they are followed up the
    bases; another library's ``**kwargs`` may go anywhere (DDP's go to torch's ``DistributedDataParallel``).
    """
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception:  # an unknown target is reported where it is built, with its own message
        return None
    owners = [k for k in inspect.getmro(obj) if "__init__" in vars(k)] if inspect.isclass(obj) else [obj]
    names: set[str] = set()
    for owner in owners:
        try:
            parameters = inspect.signature(owner.__init__ if inspect.isclass(owner) else owner).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
        if not owner.__module__.startswith("finetune."):
            return None
    return None


def _close(name: str, options: set[str]) -> str:
    match = difflib.get_close_matches(name, sorted(options), n=1)
    return f" (did you mean {match[0]}?)" if match else ""
