"""Seconds a run spends preparing its data, first run (empty cache) against the second (same data, warm cache).

    python -m benchmarks.data_prep                              # full SST-2 (67,349 training sentences)
    python -m benchmarks.data_prep --runs 3 -- data=stsb data.data_dir=../shared/data/glue/STS-B

Each run is ``python train.py <data> model=minilm trainer.max_steps=1 ...`` in a fresh process with a fresh
cache dir shared by its runs; the run's own log gives the two data steps: input validation (``validated in X s``:
reading the raw files and checking every label, or only the cache when a run already built it) and the data
module's setup (``data ready in X s``: tokenizing, or loading the tokenized cache). Their sum is the data
preparation. Writes nothing but the table on stdout (and the JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.runner import ROOT, child_env

STEPS = {"validate_s": re.compile(r"validated in ([0-9.]+) s"), "setup_s": re.compile(r"data ready in ([0-9.]+) s")}
SST2 = ["data=sst2", f"data.data_dir={ROOT.parent / 'shared/data/glue/SST-2'}"]


def one_run(overrides: list[str], work: Path, index: int) -> dict[str, float]:
    """Run train.py for one optimizer step; the data steps' seconds read from its log, and the wall time."""
    run_dir = work / "runs" / str(index)
    command = [
        sys.executable,
        "train.py",
        *overrides,
        "model=minilm",
        "trainer.max_steps=1",
        "++trainer.limit_val_batches=1",
        "trainer.val_check_interval=1",
        "test=false",
        "logger=csv",
        "resume=false",
        "task_name=data_prep",
        "++callbacks.progress_bar=null",
        "++trainer.enable_progress_bar=false",
        f"paths.cache_dir={work / 'cache'}",
        f"paths.log_dir={work / 'runs'}",
        f"hydra.run.dir={run_dir}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=child_env(), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run {index} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    text = (run_dir / "data_prep.log").read_text()
    found = {name: pattern.search(text) for name, pattern in STEPS.items()}
    missing = [name for name, match in found.items() if match is None]
    if missing:
        raise SystemExit(f"run {index}: no {missing} line in {run_dir / 'data_prep.log'}")
    seconds = {name: float(match.group(1)) for name, match in found.items()}
    return {**seconds, "data_prep_s": sum(seconds.values()), "wall_s": wall}


def measure(overrides: list[str], runs: int = 2) -> list[dict[str, float]]:
    """``runs`` runs in a row on one fresh cache dir (the first fills it), each one's seconds."""
    work = Path(tempfile.mkdtemp(prefix="data_prep_"))
    try:
        return [one_run(overrides, work, i) for i in range(runs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs in a row on one cache (the first fills it)")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    parser.add_argument("overrides", nargs="*", help="data overrides (default: full local SST-2)")
    args = parser.parse_args(argv)
    runs = measure(args.overrides or SST2, args.runs)
    print(f"data: {' '.join(args.overrides or SST2)}")
    print("| run | cache | validation | setup | data preparation | whole run |\n|---|---|---|---|---|---|")
    for i, run in enumerate(runs):
        cache = "empty" if i == 0 else "warm"
        print(
            f"| {i + 1} | {cache} | {run['validate_s']:.2f} s | {run['setup_s']:.2f} s | {run['data_prep_s']:.2f} s"
            f" | {run['wall_s']:.1f} s |"
        )
    if args.json:
        args.json.write_text(json.dumps({"overrides": args.overrides or SST2, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
