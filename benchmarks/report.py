"""From raw runs to medians, ratios and the markdown table of ``benchmarks/results/<date>.md``."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

NAMES = {
    "a": "plain",
    "b": "hf_trainer_run_glue",
    "c": "hf_trainer_fastest",
    "d": "project_defaults",
    "e": "project_fastest",
    "f": "project_frozen_embeddings",
}


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None; None if there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(top: float | None, bottom: float | None) -> float | None:
    """``top / bottom``, or None when either is missing or the bottom is 0."""
    return top / bottom if top is not None and bottom else None


def derive(run: dict[str, Any], target: float) -> dict[str, Any]:
    """A run's rates, padding share, time to reach ``target`` dev accuracy (None: never) and final accuracy."""
    seconds = run["train_time_s"]
    evals = run.get("evals") or []
    reached = next((e["train_time_s"] for e in evals if e["acc"] >= target), None)
    total = run.get("total_tokens") or 0
    return {
        "samples_per_s": run["samples"] / seconds if seconds else None,
        "tokens_per_s": run["real_tokens"] / seconds if seconds else None,
        "padding": 1 - run["real_tokens"] / total if total else None,
        "time_to_target_s": reached,
        "final_acc": evals[-1]["acc"] if evals else None,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: the median of every derived number over its successful rounds, and how many reached the
    target. ``runs`` are the raw records (``variant``, and ``derived`` or ``error``)."""
    summary: dict[str, dict[str, Any]] = {}
    for key in NAMES:
        done = [r for r in runs if r["variant"] == key and "derived" in r]
        failed = [r for r in runs if r["variant"] == key and "error" in r]
        if not done and not failed:
            continue
        derived = [r["derived"] for r in done]
        row: dict[str, Any] = {k: median(d[k] for d in derived) for k in derived[0]} if derived else {}
        row.update(
            rounds=len(done),
            failed=len(failed),
            reached=sum(d["time_to_target_s"] is not None for d in derived),
            train_time_s=median(r["train_time_s"] for r in done),
            peak_rss_mb=median(r["peak_rss_mb"] for r in done),
            first_step_s=median(r.get("first_step_s") for r in done),
            settings=done[-1]["settings"] if done else {},
        )
        summary[key] = row
    return summary


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """samples/s of each variant over plain (a), of project defaults over HF fastest (d/c) and project
    fastest over plain (e/a)."""

    def rate(key: str) -> float | None:
        return summary.get(key, {}).get("samples_per_s")

    return {
        "x_plain": {key: ratio(rate(key), rate("a")) for key in summary},
        "d_over_c": ratio(rate("d"), rate("c")),
        "e_over_a": ratio(rate("e"), rate("a")),
    }


def _num(value: float | None, fmt: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{fmt}}{suffix}"


def _time_to_target(row: dict[str, Any]) -> str:
    if not row.get("rounds"):
        return "—"
    if row["reached"] == 0:
        return "not reached"
    text = _num(row["time_to_target_s"], ".1f", " s")
    return text if row["reached"] == row["rounds"] else f"{text} ({row['reached']}/{row['rounds']} rounds)"


def table(summary: dict[str, dict[str, Any]], target: float) -> str:
    """The main table: one row per variant, medians over the rounds."""
    times = ratios(summary)["x_plain"]
    lines = [
        f"| variant | samples/s | × plain | tokens/s | padding | peak RSS | time to acc ≥ {target:g} | final dev acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, row in summary.items():
        if not row.get("rounds"):
            lines.append(f"| ({key}) {NAMES[key]} | failed | | | | | | |")
            continue
        cells = [
            f"({key}) {NAMES[key]}",
            _num(row["samples_per_s"], ",.1f"),
            _num(times.get(key), ".2f", "×"),
            _num(row["tokens_per_s"], ",.0f"),
            _num(None if row["padding"] is None else 100 * row["padding"], ".1f", "%"),
            _num(row["peak_rss_mb"], ",.0f", " MB"),
            _time_to_target(row),
            _num(row["final_acc"], ".3f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def settings_lines(summary: dict[str, dict[str, Any]]) -> list[str]:
    """What each variant actually ran with, as its child reported it."""
    lines = []
    for key, row in summary.items():
        s = row.get("settings") or {}
        fused = " (fused)" if s.get("fused") or "fused" in str(s.get("optimizer", "")) else ""
        lines.append(
            f"- ({key}) {NAMES[key]}: precision {s.get('precision', '?')}, group_by_length "
            f"{str(s.get('group_by_length', '?')).lower()}, padding {s.get('padding', '?')}, "
            f"optimizer {s.get('optimizer', '?')}{fused}, {s.get('steps', '?')} steps on {s.get('device', '?')}"
        )
    return lines


def startup_lines(startup: dict[str, Any], summary: dict[str, dict[str, Any]]) -> list[str]:
    """The startup table: the CLI's light commands and launch → first optimizer step of the project runs."""

    def cell(entry: dict[str, Any] | None) -> str:
        if not entry:
            return "—"
        return _num(entry.get("median_s"), ".2f", " s") if "error" not in entry else f"failed ({entry['error']})"

    lines = ["| startup | median |", "|---|---|"]
    lines.append(f"| `python train.py --cfg job` | {cell(startup.get('cfg_job'))} |")
    lines.append(f"| `python train.py --help` | {cell(startup.get('help'))} |")
    for i, run in enumerate(startup.get("data_prep", [])):
        which = "first run (empty cache)" if i == 0 else "next run (warm cache)"
        lines.append(f"| data preparation, full SST-2 (67,349 sentences), {which} | {run['data_prep_s']:.2f} s |")
    for key in ("d", "e", "a", "b", "c"):
        if key in summary and summary[key].get("first_step_s") is not None:
            value = _num(summary[key]["first_step_s"], ".1f", " s")
            lines.append(f"| launch → first optimizer step, ({key}) {NAMES[key]} | {value} |")
    return lines


def _load_warning(runs: list[dict[str, Any]], cores: int) -> list[str]:
    """A warning line when other work shared the machine: the 1-minute load average at each launch, less the
    about one load per core that the benchmark's own previous child leaves in it, still above one."""
    load = median(r.get("load_avg_1m") for r in runs)
    if load is None or load <= cores + 1:
        return []
    return ["", f"**Warning:** the machine was busy (median load average {load:.1f} on {cores} cores at launch)."]


def markdown(result: dict[str, Any]) -> str:
    """The whole report: setup, the table, the headline ratios, the settings and the startup timings."""
    meta, summary, r = result["meta"], result["summary"], result["ratios"]
    machine = meta["machine"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in machine["bf16_flags"].items())
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    lines = [
        f"# Training throughput, {meta['date']}",
        "",
        f"MiniLM (all-MiniLM-L6-v2) on {meta['sentences']} SST-2 training sentences (seeded subset, seed "
        f"{meta['seed']}), 1 epoch, batch {meta['batch_size']}, accuracy on {meta['dev_sentences']} dev "
        f"sentences at each quarter of the epoch. Medians of {meta['rounds']} round(s), variants alternated. "
        "Training time excludes startup, evaluation and checkpointing.",
        "",
        f"Machine: {machine['cpu']} ({machine['cores']} cores; {flags}){machine.get('gpu_note', '')}. {versions}.",
        *_load_warning(result.get("runs", []), machine.get("cores") or 1),
        *(f"\n**Warning:** {line}" for line in meta.get("warnings", [])),
        "",
        table(summary, meta["target_acc"]),
        "",
        f"Project defaults ÷ HF Trainer fastest (d/c): {_num(r['d_over_c'], '.2f', '×')}; "
        f"project fastest ÷ plain loop (e/a): {_num(r['e_over_a'], '.2f', '×')} (samples/s).",
        "",
        *settings_lines(summary),
        "",
        *startup_lines(result.get("startup", {}), summary),
    ]
    return "\n".join(lines) + "\n"
