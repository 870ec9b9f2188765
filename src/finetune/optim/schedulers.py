"""Learning-rate schedules: the ``transformers`` warmup family, ReduceLROnPlateau and OneCycle.

Each function is the ``_target_`` of a ``conf/scheduler`` option. The config gives the knobs (``_partial_: true``);
the module completes the call with the optimizer and ``num_training_steps``, the optimizer steps of the whole run
(``trainer.estimated_stepping_batches``). A function returns either a scheduler, which the module steps after every
optimizer step, or a whole Lightning scheduler config (plateau: stepped once per epoch on a validation metric).
torch and transformers are imported inside the functions so that ``--cfg job`` and ``--help`` stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from finetune.errors import UserError

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler, OneCycleLR

# The knobs each warmup-family schedule accepts besides the warmup (every one takes a warmup).
KNOBS: dict[str, tuple[str, ...]] = {
    "constant": (),
    "constant_with_warmup": (),
    "linear": (),
    "cosine": ("num_cycles",),
    "cosine_with_restarts": ("num_cycles",),
    "polynomial": ("power", "lr_end"),
    "inverse_sqrt": ("timescale",),
    "warmup_stable_decay": ("decay_ratio", "decay_type", "min_lr_ratio", "num_cycles"),
}
DECAY_TYPES = ("linear", "cosine", "1-sqrt")
KNOB_DOCS = """What each argument of ``warmup_schedule`` means.

    optimizer: the optimizer whose learning rates are scheduled.
    num_training_steps: optimizer steps in the whole run (``trainer.estimated_stepping_batches``).
    name: constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial, inverse_sqrt or
        warmup_stable_decay. ``constant`` with a warmup becomes ``constant_with_warmup``.
    warmup_ratio: share of ``num_training_steps`` spent warming up, in [0, 1) (rounded to whole steps).
    warmup_steps: the warmup as a number of optimizer steps instead; set at most one of the two to non-zero.
    num_cycles: cosine: waves of the cosine (0.5, the default, is one half wave down to 0);
        cosine_with_restarts: number of hard restarts (default 1); warmup_stable_decay: as cosine, for the
        cosine decay phase.
    power: polynomial: exponent of the decay (default 1.0: linear down to ``lr_end``).
    lr_end: polynomial: final learning rate, absolute (default 1e-7). transformers divides it by the
        optimizer's default lr, so groups with another lr end at their lr times ``lr_end / optimizer lr``.
    timescale: inverse_sqrt: the lr after warmup is ``sqrt(timescale / (step - warmup + timescale))``;
        default the warmup steps (or 10000 without warmup).
    decay_ratio: warmup_stable_decay: share of ``num_training_steps`` spent in the final decay (required);
        the stable phase at the full lr takes the steps between warmup and decay.
    decay_type: warmup_stable_decay: shape of the decay, linear, cosine (default) or 1-sqrt.
    min_lr_ratio: warmup_stable_decay: the floor as a fraction of the lr; warmup starts and decay ends there
        (default 0).
"""


def warmup_schedule(
    optimizer: Optimizer,
    num_training_steps: int,
    name: str = "linear",
    warmup_ratio: float = 0.0,
    warmup_steps: int | None = None,
    num_cycles: float | None = None,
    power: float | None = None,
    lr_end: float | None = None,
    timescale: int | None = None,
    decay_ratio: float | None = None,
    decay_type: str | None = None,
    min_lr_ratio: float | None = None,
) -> LRScheduler:
    """A ``transformers.get_scheduler`` schedule: a linear warmup from 0, then the named shape.

    The learning rate of each parameter group is its own lr times the schedule's factor. Knobs left at None take
    the transformers defaults, and are only passed on (``scheduler_specific_kwargs``) when set; a knob the named
    schedule does not take is an error rather than silently ignored.

    Args:
        optimizer, num_training_steps: what the module completes the call with.
        name: a key of ``KNOBS``; ``constant`` with a warmup becomes ``constant_with_warmup``.
        warmup_ratio, warmup_steps: the warmup, as a share of the steps or a number of steps (at most one set).
        num_cycles, power, lr_end, timescale, decay_ratio, decay_type, min_lr_ratio: the knobs of ``KNOBS``,
            described in ``KNOB_DOCS``.

    Raises:
        UserError: an unknown name, a knob the schedule does not take, or an impossible warmup or decay.
    """
    from transformers import get_scheduler

    if name not in KNOBS:
        raise UserError(f"scheduler.name must be one of {', '.join(KNOBS)}; got {name!r}")
    values = (num_cycles, power, lr_end, timescale, decay_ratio, decay_type, min_lr_ratio)
    names = ("num_cycles", "power", "lr_end", "timescale", "decay_ratio", "decay_type", "min_lr_ratio")
    given = _knobs_of(name, dict(zip(names, values, strict=True)))
    warmup = _warmup(num_training_steps, warmup_ratio, warmup_steps)
    if name == "constant" and warmup:
        name = "constant_with_warmup"
    _check_specific(name, given, warmup, num_training_steps, optimizer)
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=warmup,
        num_training_steps=num_training_steps,
        scheduler_specific_kwargs=given or None,
    )


def _knobs_of(name: str, knobs: dict[str, Any]) -> dict[str, Any]:
    """The knobs that were set, each one the schedule ``name`` takes."""
    given = {key: value for key, value in knobs.items() if value is not None}
    stray = [key for key in given if key not in KNOBS[name]]
    if stray:
        takes = ", ".join(KNOBS[name]) or "none"
        raise UserError(f"scheduler.{stray[0]} does not apply to scheduler.name={name} (its knobs: {takes})")
    return given


def _check_specific(name: str, given: dict[str, Any], warmup: int, steps: int, optimizer: Any) -> None:
    """The warmup-stable-decay phases fit the run (``given`` gets their step count); polynomial ends below lr."""
    if name == "warmup_stable_decay":
        given["num_decay_steps"] = _decay(steps, warmup, given.pop("decay_ratio", None))
        if given.get("decay_type", "cosine") not in DECAY_TYPES:
            raise UserError(
                f"scheduler.decay_type must be one of {', '.join(DECAY_TYPES)}; got {given['decay_type']!r}"
            )
    if name == "polynomial" and not given.get("lr_end", 1e-7) < optimizer.defaults["lr"]:
        raise UserError(f"scheduler.lr_end ({given.get('lr_end', 1e-7)}) must be below the optimizer's lr")


def _warmup(num_training_steps: int, warmup_ratio: float | None, warmup_steps: int | None) -> int:
    """Warmup steps from a ratio of the run or an absolute count, of which at most one may be non-zero."""
    ratio = warmup_ratio or 0.0
    if not 0.0 <= ratio < 1.0:
        raise UserError(f"scheduler.warmup_ratio must be in [0, 1), got {warmup_ratio}")
    if not warmup_steps:
        return round(ratio * num_training_steps)
    if ratio:
        raise UserError(
            f"scheduler.warmup_ratio={warmup_ratio} and scheduler.warmup_steps={warmup_steps} are both set; "
            "set the other one to 0 or null"
        )
    if warmup_steps < 0 or int(warmup_steps) != warmup_steps:
        raise UserError(f"scheduler.warmup_steps must be a whole number >= 0, got {warmup_steps}")
    if warmup_steps > num_training_steps:
        raise UserError(
            f"scheduler.warmup_steps={warmup_steps} exceeds the {num_training_steps} optimizer steps of this run; "
            "lower it or use scheduler.warmup_ratio"
        )
    return int(warmup_steps)


def _decay(num_training_steps: int, warmup: int, decay_ratio: float | None) -> int:
    """Decay steps of warmup_stable_decay from the share of the run it should take."""
    if decay_ratio is None:
        raise UserError("scheduler=wsd (warmup_stable_decay) needs scheduler.decay_ratio, e.g. 0.2")
    if not 0.0 < decay_ratio <= 1.0:
        raise UserError(f"scheduler.decay_ratio must be in (0, 1], got {decay_ratio}")
    total = max(num_training_steps, 1)
    if warmup / total + decay_ratio > 1.0 + 1e-9:
        raise UserError(
            f"the warmup ({warmup} steps) and scheduler.decay_ratio={decay_ratio} together exceed the "
            f"{num_training_steps} optimizer steps of this run"
        )
    # Rounding warmup and decay both up could overshoot the run by one step: the stable phase absorbs it.
    return min(round(decay_ratio * num_training_steps), num_training_steps - warmup)


def plateau_schedule(
    optimizer: Optimizer,
    num_training_steps: int,
    monitor: str,
    mode: str = "max",
    factor: float = 0.1,
    patience: int = 2,
    threshold: float = 1e-4,
    min_lr: float = 0.0,
    frequency: int | None = 1,
) -> dict[str, Any]:
    """ReduceLROnPlateau: multiply the lr by ``factor`` when ``monitor`` stops improving, as a Lightning config.

    Lightning steps it at the end of every ``frequency``-th training epoch, after that epoch's validation, with
    the value of ``monitor``. ``strict`` makes a run where the metric is missing fail instead of silently keeping
    the lr.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        num_training_steps: accepted so that every scheduler option is called alike, and unused: this schedule
            reacts to the metric, not to the position in the run.
        monitor: the logged metric to watch, e.g. ``val/acc``.
        mode: ``max`` if a higher ``monitor`` is better, else ``min``.
        factor: the multiplier applied to the lr on a plateau, in (0, 1).
        patience: epochs without improvement tolerated; the lr drops on the next one.
        threshold: the relative change that counts as an improvement.
        min_lr: the lr never goes below this.
        frequency: epochs between steps; must match ``trainer.check_val_every_n_epoch`` so that each step sees a
            fresh validation (None counts as 1).
    """
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    if not 0.0 < factor < 1.0:
        raise UserError(f"scheduler.factor must be in (0, 1), got {factor}")
    scheduler = ReduceLROnPlateau(
        optimizer, mode=mode, factor=factor, patience=patience, threshold=threshold, min_lr=min_lr
    )
    return {
        "scheduler": scheduler,
        "interval": "epoch",
        "frequency": frequency or 1,
        "monitor": monitor,
        "strict": True,
    }


def one_cycle_schedule(
    optimizer: Optimizer,
    num_training_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> OneCycleLR:
    """OneCycle (Smith 2018): from ``lr / div_factor`` up to each group's lr, then down far below it.

    The peak of each parameter group is the lr it has now (the optimizer's lr, or its own), so the optimizer
    config keeps meaning "the largest lr". Momentum is not cycled (``cycle_momentum=False``): cycling would
    overwrite the optimizer's configured momentum or betas, and optimizers without either would fail.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        num_training_steps: optimizer steps in the whole run; the cycle spans exactly these steps.
        pct_start: share of the run spent rising to the peak, in (0, 1).
        anneal_strategy: ``cos`` or ``linear`` interpolation within each phase.
        div_factor: the run starts at peak / div_factor.
        final_div_factor: the run ends at peak / (div_factor * final_div_factor).
    """
    from torch.optim.lr_scheduler import OneCycleLR

    if not 0.0 < pct_start < 1.0:
        raise UserError(f"scheduler.pct_start must be in (0, 1), got {pct_start}")
    if anneal_strategy not in ("cos", "linear"):
        raise UserError(f"scheduler.anneal_strategy must be cos or linear, got {anneal_strategy!r}")
    return OneCycleLR(
        optimizer,
        max_lr=[group["lr"] for group in optimizer.param_groups],
        total_steps=max(num_training_steps, 1),
        pct_start=pct_start,
        anneal_strategy=anneal_strategy,
        cycle_momentum=False,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )
