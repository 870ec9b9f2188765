"""Fine-tune on GLUE tasks one after another and write the dev-set results as a markdown table (and JSON).

    python scripts/glue_table.py                                   # sst2, mrpc, stsb, cola; 3 epochs each
    python scripts/glue_table.py --tasks mrpc --epochs 1 -- data.max_train_samples=300 model=bert_base
    make glue-table ARGS="--tasks sst2,rte"

Each task runs ``python train.py experiment=glue/<task> data.data_dir=<root>/<FOLDER> logger=csv
task_name=glue_table_<task> trainer.max_epochs=<epochs> <overrides>`` as a subprocess with HF_HUB_OFFLINE=1,
then its newest run under ``outputs/glue_table_<task>/runs/`` is read back. GLUE hides its test labels, so the
dev set is our test set: the table shows the ``test/...`` metrics.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "cola": "CoLA",
    "sst2": "SST-2",
    "mrpc": "MRPC",
    "qqp": "QQP",
    "stsb": "STS-B",
    "mnli": "MNLI",
    "qnli": "QNLI",
    "rte": "RTE",
    "wnli": "WNLI",
}
SKIP_METRICS = {"loss"}  # test/loss says little next to the task's own metrics
DATA_LINE = re.compile(r"\bdata: (\{.*\})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Arguments after the options (put them after --) go to every train.py run as Hydra overrides.",
    )
    parser.add_argument("--tasks", default="sst2,mrpc,stsb,cola", help="comma-separated, of: " + ",".join(FOLDERS))
    # The defaults are relative to the project folder; paths you give, to the directory you run in.
    parser.add_argument(
        "--data-root", type=Path, default=ROOT.parent / "shared/data/glue", help="holds SST-2/, MRPC/..."
    )
    parser.add_argument("--epochs", type=int, default=3, help="trainer.max_epochs of every run")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/glue_table.md", help="table (.md), JSON beside it"
    )
    parser.add_argument("--log-dir", type=Path, default=ROOT / "outputs", help="paths.log_dir of the runs")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. model=bert_base")
    args = parser.parse_args(argv)
    args.tasks = [t.strip().lower() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in args.tasks if t not in FOLDERS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(FOLDERS)}")
    args.data_root, args.out, args.log_dir = (p.resolve() for p in (args.data_root, args.out, args.log_dir))
    missing = [str(args.data_root / FOLDERS[t]) for t in args.tasks if not (args.data_root / FOLDERS[t]).is_dir()]
    if missing:
        parser.error(f"no GLUE folder at {', '.join(missing)} (set --data-root)")
    return args


def newest_run(log_dir: Path, task_name: str, after: float) -> Path | None:
    """The newest run dir of ``task_name`` made after ``after`` (a time stamp), or None."""
    runs = [p for p in (log_dir / task_name / "runs").glob("*") if p.is_dir() and p.stat().st_mtime >= after]
    return max(runs, key=lambda p: p.stat().st_mtime, default=None)


def train_examples(run_dir: Path, task_name: str) -> int | None:
    """The training split's size, from the ``data: {...}`` line of the run's log."""
    log_file = run_dir / f"{task_name}.log"
    if not log_file.is_file():
        return None
    for line in log_file.read_text(errors="replace").splitlines():
        match = DATA_LINE.search(line)
        if match:
            try:
                return int(ast.literal_eval(match.group(1))["train"])
            except (ValueError, SyntaxError, KeyError, TypeError):
                return None
    return None


def run_task(task: str, args: argparse.Namespace) -> dict:
    """Train and test one task in a subprocess; its row of the table."""
    task_name = f"glue_table_{task}"
    command = [
        sys.executable,
        "train.py",
        f"experiment=glue/{task}",
        f"data.data_dir={args.data_root / FOLDERS[task]}",
        "logger=csv",
        f"task_name={task_name}",
        f"trainer.max_epochs={args.epochs}",
        f"paths.log_dir={args.log_dir}",
        "++callbacks.progress_bar=null",
        "++trainer.enable_progress_bar=false",
        *args.overrides,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    print(f"[glue_table] {task}: {' '.join(command[1:])}", flush=True)
    started = time.time()
    returncode = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
    wall = time.time() - started
    row = {"task": task, "folder": FOLDERS[task], "returncode": returncode, "wall_time_s": round(wall, 1)}
    run_dir = newest_run(args.log_dir, task_name, after=started - 1)
    summary_file = run_dir / "metrics.json" if run_dir else None
    summary = json.loads(summary_file.read_text()) if summary_file and summary_file.is_file() else {}
    if run_dir:
        row["run_dir"] = str(run_dir)
    if returncode != 0 or summary.get("status") != "completed":  # a failed run records its reason, if it got that far
        row.update(status="failed", reason=summary.get("reason") or f"exit status {returncode}")
        return row
    row.update(
        status="completed",
        metrics={
            k: v
            for k, v in summary["metrics"].items()
            if k.startswith("test") and k.rsplit("/", 1)[-1] not in SKIP_METRICS
        },
        epochs=summary["epochs"],
        global_step=summary["global_step"],
        train_examples=train_examples(run_dir, task_name),
        run_time_s=summary["run_time_s"],
    )
    return row


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    """The table: one row per task, its dev-set metrics in one cell."""
    extra = " ".join(args.overrides) or "none"
    lines = [
        "# GLUE dev-set results",
        "",
        f"`python scripts/glue_table.py --tasks {','.join(args.tasks)} --epochs {args.epochs}` "
        f"(extra overrides: `{extra}`). GLUE hides its test labels: the dev set is the test set (`test/...`), "
        "validation is carved from train.",
        "",
        "| task | dev-set metric(s) | epochs | train examples | wall time |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        if row.get("status") == "failed":
            lines.append(
                f"| {row['folder']} | failed: {row['reason'].replace('|', '/')} | | | {duration(row['wall_time_s'])} |"
            )
            continue
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(row["metrics"].items())) or "-"
        examples = f"{row['train_examples']:,}" if row.get("train_examples") is not None else "?"
        lines.append(f"| {row['folder']} | {metrics} | {row['epochs']} | {examples} | {duration(row['wall_time_s'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out, rows = args.out, []
    out.parent.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:  # the files are rewritten after each task: an hour's run keeps what it finished
        rows.append(run_task(task, args))
        out.write_text(markdown(rows, args))
        payload = {"tasks": args.tasks, "epochs": args.epochs, "overrides": args.overrides, "rows": rows}
        out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    print(out.read_text(), end="")
    print(f"[glue_table] wrote {out} and {out.with_suffix('.json')}")
    return 1 if any(row.get("status") == "failed" for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
