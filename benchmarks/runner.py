"""Run one variant in a fresh subprocess and collect its result; time the CLI's startup.

Each variant gets a process of its own, so that its peak RSS (which the child reports for itself) is its own,
and no variant inherits another's warmed-up allocator, threads or imports.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import parse_result

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    """One way of training: a key (a-e), a name for the table, and how to start it."""

    key: str
    name: str
    module: str | None = None  # ``python -m <module> --spec <spec>``; None: ``python train.py <overrides>``
    args: tuple[str, ...] = ()
    overrides: tuple[str, ...] = field(default=())


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child: offline, quiet tokenizers, the repository root importable."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path}
    env.pop("BENCH_PROBE_OUT", None)
    return {**env, **extra}


def command(variant: Variant, spec_path: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The child's command line; ``extra`` goes after the variant's own arguments."""
    if variant.module:
        return [sys.executable, "-m", variant.module, "--spec", str(spec_path), *variant.args, *extra]
    return [sys.executable, "train.py", *variant.overrides, *extra]


def run_variant(
    variant: Variant, spec_path: Path, log_path: Path, timeout: float, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Start the variant, wait, and return its result with ``wall_s`` and ``first_step_s`` (from launch), or
    ``{"error": ...}`` with the log's tail. The child's output goes to ``log_path``, a project run's probe
    JSON beside it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    probe_out = log_path.with_suffix(".json")
    probe_out.unlink(missing_ok=True)
    env = child_env(BENCH_PROBE_OUT=str(probe_out))
    launched = time.time()
    try:
        with log_path.open("w") as log:
            code = subprocess.run(
                command(variant, spec_path, extra),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            ).returncode
    except subprocess.TimeoutExpired:
        code = f"timed out after {timeout:.0f} s"
    wall = time.time() - launched
    text = log_path.read_text(errors="replace")
    if variant.module:
        result = parse_result(text)
    else:
        result = json.loads(probe_out.read_text()) if probe_out.is_file() else None
    if code != 0 or result is None:
        tail = "\n".join(text.splitlines()[-15:])
        return {"error": f"exit status {code}, no result" if result is None else f"exit status {code}", "log": tail}
    first = result.get("first_step_unix")
    result.update(wall_s=wall, first_step_s=first - launched if first else None, log=str(log_path))
    return result


def time_command(args: list[str], repeat: int = 3) -> dict[str, Any]:
    """Median (and every) wall time of ``python <args>`` run ``repeat`` times from the repository root."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, *args], cwd=ROOT, env=child_env(), capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            return {"error": f"exit status {done.returncode}", "stderr": done.stderr.decode()[-500:]}
    return {"median_s": statistics.median(times), "times_s": times}
