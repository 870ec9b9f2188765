"""Compare the runs of a multirun: ``python -m finetune.report <sweep dir>`` or ``write_report(sweep_dir)``.

Writes into the sweep dir: ``summary.csv`` (one row per job), ``summary_grouped.csv`` (mean, std and count per
configuration over seeds), ``summary.md`` (both tables, linked job dirs, the plots) and ``curves_val.png``,
``curves_train_loss.png`` and ``final_metric.png``.
"""

from __future__ import annotations

from finetune.report.report import write_report

__all__ = ["write_report"]
