"""``finetune-report`` / ``python -m finetune.report <sweep dir> [--over seed --over lr] [--metric test/acc]``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog="finetune-report",
        description="Compare the jobs of a multirun: tables and plots written into its sweep dir.",
    )
    parser.add_argument("sweep_dir", type=Path, help="outputs/<task_name>/multiruns/<stamp>/")
    parser.add_argument(
        "--over",
        action="append",
        metavar="KEY",
        help="an override to average over in the grouped table (repeatable; default: seed)",
    )
    parser.add_argument("--metric", help="the metric to rank and plot (default: each job's optimized_metric)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Write the report of a sweep dir, print where ``summary.md`` is and the grouped table.

    Returns:
        0 on success; 2 (after one ``error: ...`` line on stderr) when the path is not a sweep dir or the
        metric does not exist.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    from finetune.report.collect import NotASweepDirError, collect_jobs
    from finetune.report.tables import grouped_markdown, grouped_table

    over = args.over or ["seed"]
    try:
        df = collect_jobs(args.sweep_dir)
        grouped = grouped_table(df, over=over, metric=args.metric)
    except NotASweepDirError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    unknown = [key for key in over if key not in df.columns]
    if unknown:
        logging.getLogger(__name__).warning("--over %s: no job has such an override", ", ".join(unknown))
    from finetune.report.report import write_collected

    written = write_collected(df, grouped, args.sweep_dir)
    if "summary_md" not in written:
        print(f"error: could not write the report into {args.sweep_dir} (see the warnings above)", file=sys.stderr)
        return 1
    print(f"report: {written['summary_md']}")
    print(f"files: {', '.join(sorted(path.name for path in written.values()))}")
    print()
    print(f"per configuration (averaged over {', '.join(over)}):")
    print(grouped_markdown(grouped, df))
    return 0
