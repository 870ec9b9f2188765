"""Read a multirun's sweep dir: one row per job (overrides, status, final metrics) and each job's logged curves."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

#: Columns every job row has, besides its overrides and metrics.
ROW_START = ("job", "dir")
ROW_MIDDLE = ("overrides", "status", "reason", "optimized_metric", "best")
ROW_END = ("epochs", "global_step", "run_time_s", "stop_reason")
#: What each job cost (``metrics.json``'s ``costs``, ``finetune.trainer.costs``): columns when a job recorded them.
COSTS = ("trainable_params", "trainable_share", "peak_memory_mb", "step_time_s", "checkpoint_mb")
#: Final training losses kept from ``metrics.json`` (besides every ``val/*`` and ``test/*`` metric).
TRAIN_METRICS = ("train/loss", "train/loss_epoch")


class NotASweepDirError(ValueError):
    """The path is not a multirun's sweep dir: it holds no numbered job dirs."""


def find_job_dirs(sweep_dir: str | Path) -> list[Path]:
    """The numbered job dirs (``0/``, ``1/``, ...) of a sweep dir, sorted numerically.

    Raises:
        NotASweepDirError: when ``sweep_dir`` is not a folder or holds no numbered job dir.
    """
    path = Path(sweep_dir)
    if not path.is_dir():
        raise NotASweepDirError(f"{path} is not a directory")
    jobs = sorted((p for p in path.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    if not jobs:
        raise NotASweepDirError(f"{path} is not a sweep dir: it holds no numbered job dirs (0/, 1/, ...)")
    return jobs


def parse_override(override: str) -> tuple[str, str]:
    """``"optimizer=adam"`` → ``("optimizer", "adam")``; ``+key=v`` and ``++key=v`` lose their plus signs and
    ``~key`` (a deletion) gets the value ``"~"``."""
    text = override.strip()
    if text.startswith("~"):
        return text[1:].split("=", 1)[0].strip(), "~"
    key, sep, value = text.lstrip("+").partition("=")
    return key.strip(), value.strip() if sep else ""


def collect_jobs(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job of a sweep dir, in job order; a job that lacks some of its files is still listed.

    Columns: ``job`` (int), ``dir`` (the job dir relative to the sweep dir), one column per override key (the
    value as a string), ``overrides`` (the raw overrides joined by spaces), ``status`` (from ``metrics.json``;
    ``"missing"`` without one), ``reason``, ``optimized_metric`` (its name) and ``best`` (its value), every
    ``val/*`` and ``test/*`` metric, ``train/loss`` and ``train/loss_epoch``, ``epochs``, ``global_step``,
    ``run_time_s`` and ``stop_reason``, and what the jobs cost (``COSTS``) where recorded. ``df.attrs`` holds
    ``sweep_dir``, ``override_keys``, ``monitor``, ``monitor_mode`` and ``optimized_metric`` (from the first
    job config that has them).

    Raises:
        NotASweepDirError: when ``sweep_dir`` holds no numbered job dir.
    """
    root = Path(sweep_dir)
    rows: list[dict[str, Any]] = []
    override_keys: list[str] = []
    settings: dict[str, Any] = {}
    for job_dir in find_job_dirs(root):
        overrides = _read_overrides(job_dir)
        config = _read_config(job_dir)
        for key, value in config.items():
            if value is not None:
                settings.setdefault(key, value)
        row: dict[str, Any] = {"job": int(job_dir.name), "dir": job_dir.relative_to(root).as_posix()}
        for raw in overrides:
            key, value = parse_override(raw)
            if key not in row:  # never let an override shadow the job number or dir
                row[key] = value
                if key not in override_keys:
                    override_keys.append(key)
        row["overrides"] = " ".join(overrides)
        row.update(_read_summary(job_dir, config.get("optimized_metric")))
        rows.append(row)
    metric_keys = sorted({k for row in rows for k in row if k.startswith(("val/", "test/"))})
    metric_keys += [k for k in TRAIN_METRICS if any(k in row for row in rows)]
    metric_keys += [k for k in COSTS if any(row.get(k) is not None for row in rows)]
    columns = [*ROW_START, *override_keys, *ROW_MIDDLE, *metric_keys, *ROW_END]
    df = pd.DataFrame(rows, columns=columns)
    for key in override_keys:
        df[key] = df[key].astype(object)
    numeric = ["best", *metric_keys, *ROW_END[:3]]
    df[numeric] = df[numeric].apply(pd.to_numeric, errors="coerce")
    df.attrs.update(sweep_dir=str(root), override_keys=override_keys, **settings)
    return df


def load_curves(job_dir: str | Path) -> pd.DataFrame:
    """A job's CSVLogger table (``csv/metrics.csv``): one row per logging call, NaN where a metric was not logged.

    Returns an empty DataFrame when the job wrote no CSV or it cannot be read.
    """
    path = Path(job_dir) / "csv" / "metrics.csv"
    if not path.is_file():  # a resumed or re-versioned logger writes csv/<version>/metrics.csv
        found = sorted(Path(job_dir).glob("csv/*/metrics.csv"))
        if not found:
            return pd.DataFrame()
        path = found[-1]
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as error:  # pandas' EmptyDataError and ParserError are ValueErrors
        log.warning("job %s: cannot read %s: %s", Path(job_dir).name, path, error)
        return pd.DataFrame()


def override_keys(df: pd.DataFrame) -> list[str]:
    """The override columns of a ``collect_jobs`` table (from ``df.attrs``, else the columns before ``overrides``)."""
    keys = df.attrs.get("override_keys")
    if keys is None and "overrides" in df.columns:
        columns = list(df.columns)
        keys = [c for c in columns[: columns.index("overrides")] if c not in ROW_START]
    return [k for k in keys or [] if k in df.columns]


def varying_keys(df: pd.DataFrame, keys: list[str] | None = None) -> list[str]:
    """The override keys whose value differs between jobs (a job without the override counts as different)."""
    keys = override_keys(df) if keys is None else keys
    return [k for k in keys if k in df.columns and df[k].astype(str).nunique(dropna=False) > 1]


def _read_overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        log.warning("job %s: no .hydra/overrides.yaml", job_dir.name)
        return []
    try:
        from omegaconf import OmegaConf

        return [str(item) for item in OmegaConf.to_container(OmegaConf.load(path)) or []]
    except Exception as error:  # a truncated or hand-edited file
        log.warning("job %s: cannot read %s: %s", job_dir.name, path, error)
        return []


def _read_config(job_dir: Path) -> dict[str, Any]:
    """``optimized_metric``, ``monitor``, ``monitor_mode`` and ``task_name`` of the job's composed config."""
    path = job_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(path)
    except Exception as error:
        log.warning("job %s: cannot read %s: %s", job_dir.name, path, error)
        return {}
    keys = ("optimized_metric", "monitor", "monitor_mode", "task_name")
    values = {key: OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False) for key in keys}
    return {key: str(value) for key, value in values.items() if value is not None}


def _read_summary(job_dir: Path, optimized_metric: str | None) -> dict[str, Any]:
    """Status, reason, best value and final metrics from the job's ``metrics.json``."""
    path = job_dir / "metrics.json"
    row: dict[str, Any] = {"status": "missing", "reason": None, "optimized_metric": optimized_metric}
    if not path.is_file():
        trace = _traceback_reason(job_dir)
        row["reason"] = f"no metrics.json; {trace}" if trace else "no metrics.json"
        log.warning("job %s: %s", job_dir.name, row["reason"])
        return row
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        row["reason"] = f"unreadable metrics.json: {error}"
        log.warning("job %s: %s", job_dir.name, row["reason"])
        return row
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    row["status"] = str(summary.get("status") or "unknown")
    row["reason"] = summary.get("reason") or (_traceback_reason(job_dir) if row["status"] != "completed" else None)
    if row["status"] != "completed":
        log.warning("job %s: %s (%s)", job_dir.name, row["status"], row["reason"])
    if optimized_metric is None:  # no readable config: the one val/*_best metric, if there is exactly one
        bests = [k for k in metrics if k.startswith("val/") and k.endswith("_best")]
        optimized_metric = row["optimized_metric"] = bests[0] if len(bests) == 1 else None
    row["best"] = metrics.get(optimized_metric) if optimized_metric else None
    row.update({k: v for k, v in metrics.items() if k.startswith(("val/", "test/")) or k in TRAIN_METRICS})
    row.update({k: summary.get(k) for k in ROW_END})
    costs = summary.get("costs") if isinstance(summary.get("costs"), dict) else {}
    row.update({k: costs[k] for k in COSTS if costs.get(k) is not None})
    return row


def _traceback_reason(job_dir: Path) -> str | None:
    """The last line of the job's ``traceback.txt`` (the exception), if it wrote one."""
    path = job_dir / "traceback.txt"
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1].strip() if lines else None
