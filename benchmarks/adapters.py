"""Full fine-tuning against LoRA on the demo reviews and on WNUT-16, one run each, as the README's adapter table
shows them: test quality, trainable share, what the best checkpoint and the resume state weigh, step time.

    python -m benchmarks.adapters [--out benchmarks/results/<date>_adapters.md]

Each run is ``python train.py`` with the settings below, one after the other at one thread (a fair step time on a
shared 2-core machine); the numbers come from each run's ``metrics.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (data, method, overrides); LoRA takes a larger step than a full fine-tune (its update starts at zero).
RUNS = [
    ("demo reviews", "full", []),
    ("demo reviews", "LoRA r=8", ["adapter=lora", "optimizer.lr=1e-3"]),
    ("WNUT-16", "full", ["experiment=ner"]),
    ("WNUT-16", "LoRA r=8", ["experiment=ner", "adapter=lora", "optimizer.lr=1e-3"]),
]


def train(overrides: list[str], run_dir: Path) -> dict:
    """One ``train.py`` run into ``run_dir``; its ``metrics.json``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    command = [sys.executable, "train.py", *overrides, "logger=csv", f"hydra.run.dir={run_dir}"]
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((run_dir / "metrics.json").read_text())
    summary["resume_state_mb"] = round((run_dir / "checkpoints" / "last.ckpt").stat().st_size / 2**20, 1)
    return summary


def row(data: str, method: str, overrides: list[str], summary: dict) -> str:
    metrics, costs = summary["metrics"], summary["costs"]
    quality = "test/f1" if "test/f1" in metrics and data == "WNUT-16" else "test/acc"
    command = " ".join(["python train.py", *overrides]) if overrides else "python train.py"
    return (
        f"| {data} | {method} | {quality} {metrics[quality]:.3f} | {costs['trainable_share']:.2%} "
        f"| {costs['checkpoint_mb']:.1f} MB | {summary['resume_state_mb']:.1f} MB | {costs['step_time_s']:.2f} s "
        f"| {summary['epochs']} | `{command}` |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    lines = [
        "| data | method | test quality | trainable | best checkpoint | resume state | step time | epochs | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="adapters-") as folder:
        for n, (data, method, overrides) in enumerate(RUNS):
            lines.append(row(data, method, overrides, train(overrides, Path(folder) / str(n))))
            print(lines[-1], flush=True)
    if args.out:
        stamp = datetime.date.today().isoformat()
        args.out.write_text(
            f"# Full fine-tuning and LoRA ({stamp}, `python -m benchmarks.adapters`)\n\n" + "\n".join(lines) + "\n"
        )


if __name__ == "__main__":
    main()
