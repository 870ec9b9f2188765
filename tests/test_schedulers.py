"""Every scheduler option: its learning rates against closed-form formulas, its errors, and a short training run.

The expected learning rates are written here from the formulas, independently of transformers and torch.
"""

from __future__ import annotations

import math

import pytest
from hydra.utils import instantiate

from finetune.errors import UserError
from finetune.optim.schedulers import warmup_schedule

WARMUP_FAMILY = [
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "inverse_sqrt",
    "wsd",
]
STEPS = 40  # with the configs' warmup_ratio 0.1: 4 warmup steps
LR = 0.1


def _optimizer(*lrs: float):
    import torch

    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs or (LR,)]
    return torch.optim.SGD(groups, lr=LR)


def _lrs(scheduler, optimizer, steps: int = STEPS) -> list[float]:
    """``lrs[k]``: the lr of optimizer step k (k = 0 .. steps - 1), then the lr after the last step."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return [*lrs, optimizer.param_groups[0]["lr"]]


def _close(actual: list[float], expected: list[float]) -> None:
    for step, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-15), f"step {step}: {got} != {want}"


def _warmup_factor(name: str, k: int, n: int, knobs: dict) -> float:
    """The schedule's multiplier of the lr at step k of n, from the formulas."""
    w = knobs.get("warmup_steps") or round(knobs.get("warmup_ratio", 0.0) * n)
    if name == "wsd":
        floor = knobs.get("min_lr_ratio") or 0.0
        d = min(round(knobs["decay_ratio"] * n), n - w)
        stable_end = n - d
        if k < w:
            return floor + (1 - floor) * k / w
        if k < stable_end:
            return 1.0
        if k >= n:
            return floor
        q = (k - stable_end) / d
        shape = knobs.get("decay_type") or "cosine"
        cycles = knobs.get("num_cycles") or 0.5
        f = {"linear": 1 - q, "cosine": 0.5 * (1 + math.cos(2 * math.pi * cycles * q)), "1-sqrt": 1 - math.sqrt(q)}
        return floor + (1 - floor) * f[shape]
    if k < w:
        return k / w
    p = (k - w) / (n - w)
    if name in ("constant", "constant_with_warmup"):
        return 1.0
    if name == "linear":
        return max(0.0, 1 - p)
    if name == "cosine":
        return max(0.0, 0.5 * (1 + math.cos(2 * math.pi * (knobs.get("num_cycles") or 0.5) * p)))
    if name == "cosine_with_restarts":
        return 0.0 if p >= 1 else 0.5 * (1 + math.cos(math.pi * ((knobs.get("num_cycles") or 1) * p % 1)))
    if name == "polynomial":
        end = knobs.get("lr_end", 1e-7)
        return ((LR - end) * (1 - p) ** (knobs.get("power") or 1.0) + end) / LR
    if name == "inverse_sqrt":
        t = knobs.get("timescale") or w or 10_000
        return math.sqrt(t / (k - w + t))
    raise AssertionError(name)


def _one_cycle_lr(k: int, n: int, peak: float, knobs: dict) -> float:
    """OneCycle: anneal from peak/div up to peak by step pct*n - 1, then down to peak/div/final_div by n - 1."""
    start = peak / knobs["div_factor"]
    floor = start / knobs["final_div_factor"]
    rise_end, fall_end = knobs["pct_start"] * n - 1, n - 1

    def anneal(a: float, b: float, pct: float) -> float:
        if knobs["anneal_strategy"] == "cos":
            return b + (a - b) / 2 * (1 + math.cos(math.pi * pct))
        return a + (b - a) * pct

    if k <= rise_end:
        return anneal(start, peak, k / rise_end)
    return anneal(peak, floor, (k - rise_end) / (fall_end - rise_end))


def _knobs(cfg) -> dict:
    return {k: v for k, v in cfg.scheduler.items() if not str(k).startswith("_")}


@pytest.mark.parametrize("name", WARMUP_FAMILY)
def test_warmup_family_matches_the_formulas(make_cfg, name: str) -> None:
    cfg = make_cfg(f"scheduler={name}")
    optimizer = _optimizer()
    scheduler = instantiate(cfg.scheduler)(optimizer, num_training_steps=STEPS)
    knobs = _knobs(cfg)
    expected = [LR * _warmup_factor(name, k, STEPS, knobs) for k in range(STEPS + 1)]
    lrs = _lrs(scheduler, optimizer)
    _close(lrs, expected)  # every step, so start, inside and end of warmup, middle and end among them
    warmup = round(knobs["warmup_ratio"] * STEPS)
    if name not in ("constant", "wsd"):
        assert lrs[0] == 0.0 and lrs[warmup] == pytest.approx(LR, rel=1e-9)


@pytest.mark.parametrize("lrs", [(LR,), (0.1, 0.01)])
def test_one_cycle_matches_the_formula_per_group(make_cfg, lrs: tuple[float, ...]) -> None:
    cfg = make_cfg("scheduler=one_cycle")
    optimizer = _optimizer(*lrs)
    scheduler = instantiate(cfg.scheduler)(optimizer, num_training_steps=STEPS)
    knobs = _knobs(cfg)
    recorded = {group: [] for group in range(len(lrs))}
    for _ in range(STEPS):
        for group in recorded:
            recorded[group].append(optimizer.param_groups[group]["lr"])
        optimizer.step()
        scheduler.step()
    for group, peak in enumerate(lrs):
        # Only the STEPS lrs the optimizer uses: torch's formula is not meant for the state after the last step.
        _close(recorded[group], [_one_cycle_lr(k, STEPS, peak, knobs) for k in range(STEPS)])
    assert not scheduler.cycle_momentum  # the optimizer's own momentum or betas stay as configured


def test_warmup_steps_equal_the_equivalent_ratio(make_cfg) -> None:
    by_ratio = make_cfg("scheduler=cosine")  # warmup_ratio 0.1 of 40 steps
    by_steps = make_cfg("scheduler=cosine", "scheduler.warmup_ratio=0", "scheduler.warmup_steps=4")
    traces = []
    for cfg in (by_ratio, by_steps):
        optimizer = _optimizer()
        traces.append(_lrs(instantiate(cfg.scheduler)(optimizer, num_training_steps=STEPS), optimizer))
    assert traces[0] == traces[1]
    both = make_cfg("scheduler=cosine", "scheduler.warmup_steps=4")
    with pytest.raises(UserError, match="both set") as error:
        instantiate(both.scheduler)(_optimizer(), num_training_steps=STEPS)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warmup_ratio": 1.0}, "warmup_ratio must be in"),
        ({"warmup_ratio": -0.1}, "warmup_ratio must be in"),
        ({"warmup_steps": 41}, "exceeds the 40 optimizer steps"),
        ({"name": "cosinee"}, "scheduler.name must be one of"),
        ({"name": "linear", "num_cycles": 2}, "num_cycles does not apply"),
        ({"name": "warmup_stable_decay"}, "needs scheduler.decay_ratio"),
        ({"name": "warmup_stable_decay", "warmup_ratio": 0.5, "decay_ratio": 0.6}, "together exceed"),
        ({"name": "warmup_stable_decay", "decay_ratio": 0.2, "decay_type": "exp"}, "decay_type must be"),
        ({"name": "polynomial", "lr_end": 1.0}, "below the optimizer's lr"),
    ],
)
def test_bad_warmup_settings_are_user_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as error:
        warmup_schedule(_optimizer(), STEPS, **kwargs)
    assert "\n" not in str(error.value)


def test_constant_with_a_warmup_warms_up() -> None:
    optimizer = _optimizer()
    lrs = _lrs(warmup_schedule(optimizer, STEPS, name="constant", warmup_steps=4), optimizer)
    _close(lrs, [LR * min(k / 4, 1.0) for k in range(STEPS + 1)])


def test_plateau_steps_per_epoch_on_the_monitor_and_cuts_the_lr(make_cfg) -> None:
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    cfg = make_cfg("scheduler=plateau")
    optimizer = _optimizer()
    config = instantiate(cfg.scheduler)(optimizer, num_training_steps=STEPS)
    assert config["interval"] == "epoch" and config["frequency"] == 1 and config["strict"] is True
    assert config["monitor"] == cfg.monitor == "val/acc"
    scheduler = config["scheduler"]
    assert isinstance(scheduler, ReduceLROnPlateau) and scheduler.mode == cfg.monitor_mode
    patience, factor = cfg.scheduler.patience, cfg.scheduler.factor
    scheduler.step(0.5)  # the first value is the best so far
    for _ in range(patience):
        scheduler.step(0.5)
        assert optimizer.param_groups[0]["lr"] == LR
    scheduler.step(0.5)  # the (patience + 1)-th value without improvement
    assert optimizer.param_groups[0]["lr"] == pytest.approx(LR * factor, rel=1e-9)
