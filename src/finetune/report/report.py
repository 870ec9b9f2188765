"""``write_report``: the one call that turns a sweep dir into tables and plots, and never raises."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def write_report(sweep_dir: str | Path, over: Sequence[str] = ("seed",), metric: str | None = None) -> dict[str, Path]:
    """Write ``summary.csv``, ``summary_grouped.csv``, ``summary.md`` and the PNG plots into ``sweep_dir``.

    Made for the end of a multirun: a job with missing or broken files is listed with a warning, a plot that
    fails is skipped with a warning, and nothing here raises (an unusable ``sweep_dir`` gives an empty dict).

    Args:
        sweep_dir: the multirun's sweep dir (``outputs/<task_name>/multiruns/<stamp>/``).
        over: overrides to average over in the grouped table (``seed`` by default).
        metric: the metric to rank and plot per configuration; by default each job's ``optimized_metric``.

    Returns:
        The written files by name: ``summary_csv``, ``summary_grouped_csv``, ``summary_md``, ``curves_val``,
        ``curves_train_loss`` and ``final_metric``.
    """
    from finetune.report.collect import collect_jobs
    from finetune.report.tables import grouped_table

    out_dir = Path(sweep_dir)
    try:
        df = collect_jobs(out_dir)
    except Exception as error:
        log.warning("no sweep report for %s: %s", out_dir, error)
        return {}
    try:
        grouped = grouped_table(df, over=list(over), metric=metric)
    except KeyError as error:
        log.warning("%s; reporting each job's optimized metric instead", error.args[0])
        grouped = grouped_table(df, over=list(over))
    except Exception as error:
        log.warning("could not group the runs of %s: %s", out_dir, error, exc_info=True)
        return {}
    return write_collected(df, grouped, out_dir)


def write_collected(df: pd.DataFrame, grouped: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write the plots, then the tables (``summary.md`` shows the plots that were drawn) into ``out_dir``.

    Args:
        df: ``collect_jobs``' table.
        grouped: ``grouped_table(df, ...)``.
        out_dir: where the files go (the sweep dir).

    Returns:
        The written files by name, as ``write_report``.
    """
    from finetune.report.plots import write_plots
    from finetune.report.tables import write_tables

    written: dict[str, Path] = {}
    plots = write_plots(df, grouped, out_dir)
    try:
        written.update(write_tables(df, grouped, out_dir, images=plots.values()))
    except Exception as error:
        log.warning("could not write the sweep tables into %s: %s", out_dir, error, exc_info=True)
    written.update(plots)
    return written
