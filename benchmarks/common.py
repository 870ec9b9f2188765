"""What every variant shares: the training clock, token counting, evaluation points, peak memory, the result line;
and the machine's description.

A variant runs in its own process and prints one line ``BENCH_RESULT {json}`` (the project's run writes the same
JSON to a file instead; see ``benchmarks.probe``). Its keys: ``train_time_s`` (training only: evaluation,
checkpointing and startup excluded), ``samples``, ``real_tokens`` and ``total_tokens`` (non-pad and all tokens of
the batches fed), ``evals`` (one ``{"step", "fraction", "train_time_s", "acc"}`` per evaluation),
``first_step_unix`` (``time.time()`` after the first optimizer step), ``peak_rss_mb`` and ``settings``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "
EVAL_FRACTION = 0.25  # dev accuracy at 25, 50, 75 and 100% of the epoch


class TrainClock:
    """Wall time spent training: runs between ``start`` and ``stop`` except while paused (evaluation)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._since: float | None = None

    @property
    def running(self) -> bool:
        return self._since is not None

    def start(self) -> None:
        """Start or resume; a no-op while running."""
        if self._since is None:
            self._since = time.perf_counter()

    def pause(self) -> None:
        """Stop counting (also the final stop); a no-op while paused."""
        if self._since is not None:
            self.total += time.perf_counter() - self._since
            self._since = None

    def elapsed(self) -> float:
        """Training seconds so far."""
        return self.total + (time.perf_counter() - self._since if self._since is not None else 0.0)


class TokenCounter:
    """Real (attention-mask) and padded token counts of the training batches fed to the model."""

    def __init__(self) -> None:
        self.samples = 0
        self.real_tokens = 0
        self.total_tokens = 0

    def add(self, attention_mask: Any) -> None:
        """Count one batch from its ``attention_mask`` (a tensor of shape batch × length)."""
        self.samples += int(attention_mask.shape[0])
        self.real_tokens += int(attention_mask.sum())
        self.total_tokens += int(attention_mask.numel())

    def as_dict(self) -> dict[str, int]:
        return {"samples": self.samples, "real_tokens": self.real_tokens, "total_tokens": self.total_tokens}


def eval_interval(num_batches: int, fraction: float = EVAL_FRACTION) -> int:
    """Batches between evaluations, by Lightning's rule for a float ``val_check_interval`` (at least 1)."""
    return max(1, int(num_batches * fraction))


def eval_steps(num_batches: int, fraction: float = EVAL_FRACTION) -> list[int]:
    """Steps (1-based) after which the plain loop and the HF Trainer evaluate: every ``eval_interval`` batches,
    as Lightning does, and also after the last batch so that every variant ends with a final accuracy."""
    every = eval_interval(num_batches, fraction)
    steps = list(range(every, num_batches + 1, every))
    return steps if steps and steps[-1] == num_batches else [*steps, num_batches]


def eval_record(step: int, num_batches: int, train_time: float, acc: float) -> dict[str, float]:
    """One evaluation: where in the epoch, after how much training time, with what dev accuracy."""
    return {"step": step, "fraction": round(step / num_batches, 4), "train_time_s": train_time, "acc": float(acc)}


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def has_bf16() -> bool:
    """True where bf16 compute is native: a GPU that supports it, or a CPU with AMX tiles or AVX512-BF16."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & {"amx_tile", "amx_bf16", "avx512_bf16"})


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    line = next((row for row in _cpuinfo() if row.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def emit(result: dict[str, Any]) -> None:
    """Print the result line the parent parses."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The last result line of a child's output, or None."""
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    return json.loads(lines[-1][len(RESULT_PREFIX) :]) if lines else None


def load_spec(path: str) -> dict[str, Any]:
    """The run's settings, written by ``benchmarks.bench`` (see ``benchmarks.bench.loop_spec``)."""
    return json.loads(Path(path).read_text())


def device() -> str:
    """``cuda`` when there is a GPU, else ``cpu``: every variant trains where the project would."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def machine_info() -> dict[str, Any]:
    """CPU model, bf16 flags, cores, GPU and library versions."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), None)
    flags = cpu_flags()
    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "lightning", "accelerate", "datasets"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    info = {
        "cpu": cpu or platform.processor() or "unknown CPU",
        "cores": os.cpu_count(),
        "bf16_flags": {f: f in flags for f in ("amx_tile", "amx_bf16", "avx512_bf16")},
        "bf16": has_bf16(),
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_note"] = f"; GPU {info['gpu']}"
    return info


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
