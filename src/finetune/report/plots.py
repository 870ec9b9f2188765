"""The sweep's plots: validation and training curves per job, and the final metric per configuration.

Matplotlib is imported inside the functions and draws on its Agg canvas, never through pyplot: no window, no
global backend switch, safe at the end of a multirun.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from finetune import atomic
from finetune.report.collect import load_curves, override_keys, varying_keys
from finetune.report.tables import ALL_GROUP, key_values, metric_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
DPI = 120
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def color_key(df: pd.DataFrame, keys: list[str] | None = None) -> str | None:
    """What colors the lines: the ``optimizer`` override if there is one, else the first override that varies."""
    keys = override_keys(df) if keys is None else keys
    if "optimizer" in keys:
        return "optimizer"
    varying = varying_keys(df, keys)
    return varying[0] if varying else (keys[0] if keys else None)


def color_map(values: list[Any]) -> dict[str, Any]:
    """One tab10/tab20 color per distinct value, in order of first appearance."""
    from matplotlib import colormaps

    distinct = list(dict.fromkeys(str(v) for v in values))
    cmap = colormaps["tab10" if len(distinct) <= 10 else "tab20"]
    return {value: cmap(i % cmap.N) for i, value in enumerate(distinct)}


def job_label(row: pd.Series, keys: list[str]) -> str:
    """``"3: optimizer=adam seed=2"``: the job number and the overrides that tell it apart."""
    parts = [f"{k}={row[k]}" for k in keys if isinstance(row[k], str)]
    return f"{row['job']}: {' '.join(parts)}" if parts else str(row["job"])


def _figure(width: float = 8.0, height: float = 5.0) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    with atomic.atomic_open(path, "wb") as handle:  # a report viewer never sees half an image
        figure.savefig(handle, dpi=DPI, format=path.suffix.lstrip(".") or "png")
    return path


def _no_data(axes: Any, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="0.4", wrap=True)


def _legend(axes: Any, entries: int) -> None:
    """A legend inside the plot for a few lines, outside on the right for many."""
    if entries == 0:
        return
    if entries <= 4:
        axes.legend(fontsize="small", framealpha=0.85)
    else:
        columns = 1 if entries <= 20 else 2
        axes.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=columns)


def curve_column(curves: pd.DataFrame, wanted: list[str]) -> str | None:
    """The first of ``wanted`` that the job's CSV logged at least once."""
    return next((c for c in wanted if c in curves.columns and curves[c].notna().any()), None)


def plot_curves(
    df: pd.DataFrame, wanted: list[str], path: Path, title: str, cache: dict[str, pd.DataFrame] | None = None
) -> Path:
    """One line per job of the first logged of ``wanted`` against the global step, colored by ``color_key``.

    ``cache`` (job dir → its ``load_curves`` table) lets several plots read each CSV once.
    """
    root = Path(df.attrs.get("sweep_dir", "."))
    cache = {} if cache is None else cache
    keys = varying_keys(df) or override_keys(df)
    key = color_key(df)
    colors = color_map(list(df[key].astype(str))) if key else {}
    seen: dict[str, int] = {}
    figure = _figure(10.0 if len(df) > 4 else 8.0, 5.0)
    axes = figure.add_subplot()
    drawn, names, skipped = 0, set(), []
    for _, row in df.iterrows():
        if row["dir"] not in cache:
            cache[row["dir"]] = load_curves(root / row["dir"])
        curves = cache[row["dir"]]
        column = curve_column(curves, wanted)
        if column is None or "step" not in curves.columns:
            skipped.append(str(row["job"]))
            continue
        data = curves[["step", column]].dropna().groupby("step", as_index=False).last()
        group = str(row[key]) if key else ""
        index = seen[group] = seen.get(group, -1) + 1
        axes.plot(
            data["step"],
            data[column],
            color=colors.get(group),
            linestyle=LINESTYLES[index % len(LINESTYLES)],
            marker=MARKERS[index % len(MARKERS)] if len(data) <= 30 else None,
            markersize=4,
            linewidth=1.6,
            alpha=0.9,
            label=job_label(row, keys),
        )
        drawn, names = drawn + 1, names | {column}
    _label_curves(axes, f"{title} (color: {key})" if key else title, " / ".join(sorted(names)) or wanted[0])
    if drawn == 0:
        _no_data(
            axes, f"no job logged {' or '.join(wanted)} to csv/metrics.csv\n(logger=csv; fast_dev_run logs nothing)"
        )
    elif skipped:
        axes.text(0.99, 0.01, f"no curve: job {', '.join(skipped)}", transform=axes.transAxes, ha="right", fontsize=8)
    _legend(axes, drawn)
    return _save(figure, path)


def _label_curves(axes: Any, title: str, ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel("global step")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)


def plot_final_metric(grouped: pd.DataFrame, df: pd.DataFrame, path: Path) -> Path:
    """Bars of the main metric's mean per configuration, std error bars, and each completed run as a dot."""
    keys, main = grouped.attrs["group_keys"], grouped.attrs["metric"]
    key = "optimizer" if "optimizer" in keys else keys[0]
    colors = color_map(list(grouped[key].astype(str)))
    labels = ["\n".join(f"{k}={row[k]}" for k in keys) if keys != ["group"] else "all" for _, row in grouped.iterrows()]
    figure = _figure(max(6.0, 1.1 * len(grouped) + 2.5), 5.0)
    axes = figure.add_subplot()
    positions = list(range(len(grouped)))
    means = grouped[f"{main} mean"].astype(float)
    errors = grouped[f"{main} std"].astype(float).fillna(0.0)
    axes.bar(
        positions,
        means.fillna(0.0),
        yerr=errors,
        capsize=6,
        color=[colors[str(v)] for v in grouped[key]],
        alpha=0.75,
        edgecolor="0.2",
        error_kw={"elinewidth": 1.4},
    )
    done = df[df["status"] == "completed"]
    for position, (_, row) in zip(positions, grouped.iterrows(), strict=True):
        members = done if keys == ["group"] else done[(key_values(done, keys) == row[keys].astype(str)).all(axis=1)]
        values = members[main].dropna()
        spread = [position + 0.25 * (i / max(1, len(values) - 1) - 0.5) for i in range(len(values))]
        axes.scatter(spread if len(values) > 1 else [position] * len(values), values, color="black", s=14, zorder=3)
        n = int(row[f"{main} n"])
        text = f"n={n}" if n else "no completed run"
        top = float(means.iloc[position] + errors.iloc[position]) if n else 0.0
        axes.annotate(text, (position, top), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    axes.set_xticks(positions, labels, fontsize=9, rotation=0 if len(grouped) <= 6 else 30, ha="center")
    label = metric_label(df, main)
    axes.set_ylabel(f"{label} (mean ± std)")
    over = ", ".join(grouped.attrs.get("over", [])) or "nothing"
    axes.set_title(f"final {label} per configuration (over {over}; dots: runs)")
    axes.grid(True, axis="y", alpha=0.3)
    high = pd.concat([means + errors, done[main]]).dropna()
    low = pd.concat([means - errors, done[main]]).dropna()
    if len(high) and 0 < high.max() - low.min() < 0.1 * abs(high.max()) and low.min() > 0:
        spread = high.max() - low.min()  # close results: start the axis near them, not at 0
        axes.set_ylim(low.min() - spread, high.max() + 0.3 * spread)
        axes.text(0.01, 0.99, "y axis does not start at 0", transform=axes.transAxes, va="top", fontsize=8, color="0.4")
    return _save(figure, path)


def plot_quality_vs_parameters(grouped: pd.DataFrame, df: pd.DataFrame, path: Path) -> Path:
    """The main metric's mean (std bars) against trainable parameters (log scale), one point per configuration."""
    keys, main = grouped.attrs["group_keys"], grouped.attrs["metric"]
    figure = _figure(8.0, 5.0)
    axes = figure.add_subplot()
    x = grouped["trainable_params mean"].astype(float)
    y, errors = grouped[f"{main} mean"].astype(float), grouped[f"{main} std"].astype(float).fillna(0.0)
    axes.errorbar(x, y, yerr=errors, fmt="o", capsize=5, color="tab:blue")
    for (_, row), xi, yi in zip(grouped.iterrows(), x, y, strict=True):
        label = ", ".join(str(row[k]) for k in keys if k != ALL_GROUP) or "all"
        axes.annotate(label, (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters (log scale)")
    axes.set_ylabel(f"{metric_label(df, main)} (mean ± std)")
    axes.set_title("quality against trainable parameters")
    axes.grid(True, which="both", alpha=0.3)
    return _save(figure, path)


def write_plots(df: pd.DataFrame, grouped: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write ``curves_val.png``, ``curves_train_loss.png``, ``final_metric.png`` and, when the configurations
    train different numbers of parameters, ``quality_vs_parameters.png``; a failing plot is skipped."""
    monitor = df.attrs.get("monitor")
    optimized = str(df.attrs.get("optimized_metric") or "")
    val = list(dict.fromkeys(m for m in (monitor, optimized.removesuffix("_best")) if m))
    val += [c for c in df.columns if c.startswith("val/") and not c.endswith("_best") and c not in val]
    val, cache = val or ["val/loss"], {}
    jobs = {
        "curves_val": lambda: plot_curves(df, val, out_dir / "curves_val.png", f"{val[0]} per job", cache),
        "curves_train_loss": lambda: plot_curves(
            df, ["train/loss_step", "train/loss"], out_dir / "curves_train_loss.png", "training loss per job", cache
        ),
        "final_metric": lambda: plot_final_metric(grouped, df, out_dir / "final_metric.png"),
    }
    if "trainable_params mean" in grouped.columns and grouped["trainable_params mean"].nunique() > 1:
        jobs["quality_vs_parameters"] = lambda: plot_quality_vs_parameters(
            grouped, df, out_dir / "quality_vs_parameters.png"
        )
    paths = {}
    for name, draw in jobs.items():
        try:
            paths[name] = draw()
        except Exception as error:  # one broken plot must not cost the others or the tables
            log.warning("could not draw %s: %s", name, error, exc_info=True)
    return paths
