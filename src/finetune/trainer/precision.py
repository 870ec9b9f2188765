"""``trainer.precision: auto``: bf16 autocast where the hardware runs it fast, full fp32 elsewhere."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((row for row in text.splitlines() if row.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def auto_precision() -> tuple[str, str]:
    """The precision ``auto`` stands for on this machine, and why.

    bf16-mixed on GPUs that support bf16 and on CPUs with bf16 matrix instructions (AMX tiles or AVX-512 bf16);
    fp32 elsewhere. ``make bench`` measured bf16 autocast 1.19x faster than fp32 on a 2-core AVX-512-bf16 CPU at
    equal dev accuracy (benchmarks/results/), and the CI accuracy gates pass in both precisions.
    """
    import torch

    from finetune.trainer import compat

    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"{torch.cuda.get_device_name()} supports bf16"
        return "32", f"{torch.cuda.get_device_name()} has no bf16"
    flags = cpu_flags()
    if "amx_bf16" in flags or compat.cpu_has_amx():
        return "bf16-mixed", "the CPU has AMX bf16 units"
    if "avx512_bf16" in flags:
        return "bf16-mixed", "the CPU has AVX-512 bf16 instructions"
    return "32", "no bf16 matrix instructions (no CUDA bf16, no AMX, no AVX-512 bf16)"


def resolve_precision(value: str | int) -> str | int:
    """``auto`` as ``auto_precision`` decides (logged); any other value unchanged."""
    if str(value) != "auto":
        return value
    choice, reason = auto_precision()
    log.info("trainer.precision=auto -> %s (%s)", choice, reason)
    return choice


def pad_multiple(precision: str | int, device_type: str) -> int | None:
    """The length batches are padded to a multiple of: 8 under mixed precision on a GPU (tensor cores want it),
    None elsewhere. On a CPU the padding is only extra work: bf16 steps at lengths 16, 24, 32 took 4-7% longer
    than at 13, 21, 29 (``python -m benchmarks.pad_multiple``, 2026-11-29)."""
    return 8 if device_type == "cuda" and "16" in str(precision) else None
