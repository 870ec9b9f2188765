"""The sweep's tables: per job (``summary.csv``), per configuration over seeds (``summary_grouped.csv``) and both
as markdown (``summary.md``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from finetune import atomic
from finetune.report.collect import COSTS, override_keys, varying_keys

NON_METRICS = ("job",)
ALL_GROUP = "group"  # the one group's column when every varying override is averaged over


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The numeric columns worth averaging: ``best``, the final metrics, epochs, steps and run time."""
    keys = set(override_keys(df))
    return [c for c in df.columns if c not in NON_METRICS and c not in keys and pd.api.types.is_numeric_dtype(df[c])]


def main_metric(df: pd.DataFrame, metric: str | None = None) -> str:
    """The column a report ranks and plots: ``metric`` if given, else ``best`` (each job's optimized metric).

    Raises:
        KeyError: when ``metric`` is not a numeric column of ``df``.
    """
    if metric is None or (metric == df.attrs.get("optimized_metric") and "best" in df.columns):
        return "best"
    if metric not in metric_columns(df):
        raise KeyError(f"metric '{metric}' is not in the sweep; metrics: {', '.join(metric_columns(df))}")
    return metric


def metric_label(df: pd.DataFrame, column: str) -> str:
    """``best`` as the optimized metric's name (``val/acc_best``) when every job optimized the same one."""
    if column != "best":
        return column
    names = df["optimized_metric"].dropna().unique() if "optimized_metric" in df.columns else []
    return str(names[0]) if len(names) == 1 else "best"


def metric_mode(df: pd.DataFrame, column: str) -> str:
    """``"min"`` or ``"max"``: losses go down; the monitored metric goes the config's ``monitor_mode`` way."""
    name = metric_label(df, column)
    if "loss" in name or column in ("run_time_s", "epochs", "global_step", *COSTS):
        return "min"
    if column == "best" or name in (df.attrs.get("optimized_metric"), df.attrs.get("monitor")):
        return str(df.attrs.get("monitor_mode", "max"))
    return "max"


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """The per-job table (``summary.csv``): every column of ``collect_jobs``, jobs in order."""
    table = df.sort_values("job", kind="stable").reset_index(drop=True)
    table.attrs = dict(df.attrs)
    return table


def group_keys(df: pd.DataFrame, over: Iterable[str] = ("seed",)) -> list[str]:
    """The overrides that tell the configurations apart: those that vary, except the ones averaged ``over``."""
    skip = set(over)
    return [k for k in varying_keys(df) if k not in skip]


def key_values(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The override values of ``keys`` as strings, ``"(none)"`` for a job without that override."""
    return df[keys].astype(object).where(df[keys].notna(), "(none)").astype(str)


def grouped_table(df: pd.DataFrame, over: Sequence[str] = ("seed",), metric: str | None = None) -> pd.DataFrame:
    """Mean, sample std and count of every metric per configuration, averaging over the overrides in ``over``.

    Only completed jobs count. Columns: the group keys (or ``group`` = ``"all"`` when nothing else varies),
    ``runs`` (jobs in the group), ``completed``, then ``<metric> mean``, ``<metric> std`` (ddof=1; NaN for one
    run) and ``<metric> n`` for each metric, the main metric (``metric``, else ``best``) first. Groups keep the
    order of their first job. ``attrs``: ``group_keys``, ``over``, ``metric`` and the collected table's attrs.
    """
    main = main_metric(df, metric)
    metrics = [main, *[c for c in metric_columns(df) if c != main]]
    keys = group_keys(df, over)
    frame = df.copy()
    if keys:
        frame[keys] = key_values(frame, keys)
        groups = list(frame.groupby(keys, sort=False, dropna=False))
    else:
        keys, groups = [ALL_GROUP], [("all", frame)]
    rows = []
    for values, group in groups:
        values = values if isinstance(values, tuple) else (values,)
        done = group[group["status"] == "completed"]
        row: dict[str, Any] = dict(zip(keys, values, strict=True))
        row.update(runs=len(group), completed=len(done))
        for column in metrics:
            data = done[column].dropna().astype(float)
            row[f"{column} mean"] = data.mean() if len(data) else math.nan
            row[f"{column} std"] = data.std(ddof=1) if len(data) > 1 else math.nan
            row[f"{column} n"] = len(data)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs = {**df.attrs, "group_keys": keys, "over": list(over), "metric": main}
    return table


REASON_WIDTH = 300  # characters of a failed job's reason in summary.md; summary.csv and the job dir keep it whole


def shortened(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def format_value(value: Any, column: str = "") -> str:
    """A cell: empty for NaN/None, integers for counts, 4 significant digits for floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and (column in ("epochs", "global_step") or (value.is_integer() and abs(value) > 1e4)):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def stat_cell(row: pd.Series, column: str, bold: bool = False) -> str:
    """``"mean ± std (n)"``; ``"mean (1)"`` for one run; empty without completed runs."""
    n = int(row[f"{column} n"])
    if n == 0:
        return ""
    mean = format_value(float(row[f"{column} mean"]), column)
    mean = f"**{mean}**" if bold else mean
    std = row[f"{column} std"]
    return f"{mean} ± {format_value(float(std), column)} ({n})" if n > 1 else f"{mean} ({n})"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def display_metrics(df: pd.DataFrame, main: str) -> list[str]:
    """The metric columns a markdown table shows: the main metric, then the rest without its duplicate."""
    shown = metric_label(df, main)
    rest = [c for c in metric_columns(df) if c not in (main, "global_step") and c != shown]
    return [main, *rest]


def grouped_markdown(grouped: pd.DataFrame, df: pd.DataFrame) -> str:
    """The grouped table as markdown with ``mean ± std (n)`` cells; the best mean of the main metric in bold."""
    keys, main = grouped.attrs["group_keys"], grouped.attrs["metric"]
    metrics = display_metrics(df, main)
    means = grouped[f"{main} mean"]
    best = None
    if means.notna().any():
        best = means.idxmin() if metric_mode(df, main) == "min" else means.idxmax()
    header = [*keys, "runs", *[metric_label(df, m) for m in metrics]]
    rows = []
    for index, row in grouped.iterrows():
        cells = [format_value(row[k]) for k in keys] + [f"{row['completed']}/{row['runs']}"]
        cells += [stat_cell(row, m, bold=index == best and m == main) for m in metrics]
        rows.append(cells)
    return markdown_table(header, rows)


def runs_markdown(df: pd.DataFrame, main: str) -> str:
    """The per-job table as markdown, each job linked to its dir; only the overrides that vary."""
    keys = varying_keys(df) or override_keys(df)
    metrics = display_metrics(df, main)
    header = ["job", *keys, "status", *[metric_label(df, m) for m in metrics], "stop_reason"]
    rows = []
    for _, row in df.iterrows():
        link = f"[{row['job']}]({row['dir']}/)"
        status = row["status"] if row["status"] == "completed" else f"**{row['status']}**"
        cells = [link, *[format_value(row[k]) for k in keys], status]
        rows.append(cells + [format_value(row[m], m) for m in metrics] + [format_value(row["stop_reason"])])
    return markdown_table(header, rows)


def summary_markdown(df: pd.DataFrame, grouped: pd.DataFrame, images: Iterable[Path] = ()) -> str:
    """``summary.md``: what was swept, the per-job table, the grouped table, failures and plots."""
    main = grouped.attrs["metric"]
    counts = df["status"].value_counts()
    status_text = ", ".join(f"{n} {status}" for status, n in counts.items())
    over = ", ".join(grouped.attrs["over"]) or "nothing"
    lines = [
        f"# Sweep report: {df.attrs.get('sweep_dir', '')}",
        "",
        f"{len(df)} jobs: {status_text}. Main metric: `{metric_label(df, main)}` ({metric_mode(df, main)}).",
        "",
        "## Runs",
        "",
        runs_markdown(df, main),
        "",
        f"## Per configuration (averaged over {over}; completed runs only)",
        "",
        "Cells: mean ± sample std (completed runs). `runs`: completed/all.",
        "",
        grouped_markdown(grouped, df),
    ]
    broken = df[df["status"] != "completed"]
    if len(broken):
        lines += ["", "## Jobs that did not complete", ""]
        root = Path(df.attrs.get("sweep_dir", "."))
        for _, row in broken.iterrows():
            reason = shortened(format_value(row["reason"]) or "no reason recorded", REASON_WIDTH)
            trace = root / str(row["dir"]) / "traceback.txt"
            link = f" ([traceback]({row['dir']}/traceback.txt))" if trace.is_file() else ""
            overrides = row["overrides"] or "no overrides"
            lines.append(f"- [job {row['job']}]({row['dir']}/) ({overrides}): {row['status']}: {reason}{link}")
    for image in images:
        lines += ["", f"![{image.stem}]({image.name})"]
    return "\n".join(lines) + "\n"


def write_tables(df: pd.DataFrame, grouped: pd.DataFrame, out_dir: Path, images: Iterable[Path] = ()) -> dict:
    """Write ``summary.csv``, ``summary_grouped.csv`` and ``summary.md`` into ``out_dir``; return their paths."""
    paths = {
        "summary_csv": out_dir / "summary.csv",
        "summary_grouped_csv": out_dir / "summary_grouped.csv",
        "summary_md": out_dir / "summary.md",
    }
    atomic.write_text(paths["summary_csv"], summary_table(df).to_csv(index=False))
    atomic.write_text(paths["summary_grouped_csv"], grouped.to_csv(index=False))
    atomic.write_text(paths["summary_md"], summary_markdown(df, grouped, images))
    return paths
