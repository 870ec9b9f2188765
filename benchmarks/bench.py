"""Train MiniLM on the same SST-2 sentences five ways and compare throughput, padding, memory and accuracy.

    make bench                                               # 2048 sentences, 3 rounds, all five variants
    python -m benchmarks.bench --sentences 128 --rounds 1    # a quick check that everything runs
    python -m benchmarks.bench --variants a,d --target-acc 0.8

Variants, each in a fresh subprocess, alternated a b c d e a b c d e ...: (a) a plain PyTorch loop fed the
project's batches, (b) the HF Trainer with run_glue's defaults, (c) the HF Trainer at its fastest, (d) ``python
train.py`` with the project's defaults, (e) (d) plus the speed flags. The loop settings of (a), (b) and (c) are
read from (d)'s composed config, so all five use the same lr, batch, weight decay, warmup, clipping and seed.
Writes ``benchmarks/results/<date>.json`` (every measurement) and ``.md`` (the table), and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from benchmarks import data, data_prep, report
from benchmarks.common import has_bf16, machine_info
from benchmarks.runner import ROOT, Variant, child_env, run_variant, time_command
from finetune.trainer.precision import pad_multiple

WORK_DIR = ROOT / "outputs/.cache/bench"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    today = datetime.date.today().isoformat()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--variants", default="a,b,c,d,e", help="comma-separated keys (a-f) or names")
    parser.add_argument(
        "--sentences",
        type=int,
        default=2048,
        help="training sentences (a multiple of 128 keeps the evaluation points of every variant at exact quarters)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="times each variant runs")
    parser.add_argument("--target-acc", type=float, default=0.75, help="dev accuracy for 'time to acc'")
    parser.add_argument("--seed", type=int, default=42, help="data subset and training seed")
    parser.add_argument(
        "--dev-sentences",
        type=int,
        default=None,
        help="evaluate on the first N dev sentences only (quick checks; default: all)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / f"benchmarks/results/{today}.md", help="table; JSON beside")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one variant run may take")
    args = parser.parse_args(argv)
    by_name = {name: key for key, name in report.NAMES.items()}
    keys = [by_name.get(v.strip(), v.strip()) for v in args.variants.split(",") if v.strip()]
    unknown = [k for k in keys if k not in report.NAMES]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {report.NAMES}")
    args.keys = list(dict.fromkeys(keys))
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def project_overrides(files: dict[str, str], seed: int) -> list[str]:
    """(d): only what makes ``train.py`` train on the benchmark's data like the others, plus measuring; no speed
    flags, so whatever the project's defaults are today is what runs."""
    return [
        "data=csv",
        f"data.train_file={files['train']}",
        f"data.validation_file={files['dev']}",
        f"data.test_file={files['dev']}",
        "data.text_column=sentence",
        "data.label_column=label",
        "model=minilm",
        "data.batch_size=32",
        "trainer.max_epochs=1",
        "optimizer.lr=5e-5",
        f"seed={seed}",
        "logger=csv",
        "test=false",
        "resume=false",  # never continue an earlier, interrupted benchmark run
        "task_name=bench",
        f"paths.log_dir={WORK_DIR / 'runs'}",
        "++callbacks.progress_bar=null",
        "++trainer.enable_progress_bar=false",
        "trainer.val_check_interval=0.25",
        "+callbacks.bench_probe._target_=benchmarks.probe.BenchProbe",
    ]


def fastest_overrides(bf16: bool) -> list[str]:
    """(e)'s speed flags on top of (d): length grouping, and bf16 autocast where the hardware has bf16."""
    return ["data.group_by_length=true", f"trainer.precision={'bf16-mixed' if bf16 else '32'}"]


def composed_config(overrides: list[str]) -> dict[str, Any]:
    """The config ``train.py <overrides>`` runs with (``--cfg job --resolve``), as plain data."""
    done = subprocess.run(
        [sys.executable, "train.py", "--cfg", "job", "--resolve", *overrides],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"train.py --cfg job failed:\n{done.stderr[-2000:]}")
    return yaml.safe_load(done.stdout)


def resolved_precision(precision: str) -> str:
    """What ``trainer.precision`` means on this machine (``auto`` is decided by the project at run time)."""
    if precision != "auto":
        return precision
    from finetune.trainer.precision import auto_precision

    return auto_precision()[0]


def device_type() -> str:
    """Where ``train.py`` would train here (``trainer.accelerator: auto``)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_padding(spec: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """A warning if the project run padded otherwise than the plain loop was told to (a precision mismatch)."""
    reported = {str(r["settings"].get("precision")) for r in runs if r["variant"] == "d" and "settings" in r}
    pads = {pad_multiple(p, device_type()) for p in reported}
    if pads and pads != {spec["pad_to_multiple_of"]}:
        return [f"(d) ran at precision {sorted(reported)} but (a) padded to multiple {spec['pad_to_multiple_of']}"]
    return []


def loop_spec(cfg: dict[str, Any], files: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The settings (a), (b) and (c) train with, taken from (d)'s config; and what they cannot mirror."""
    from finetune.hf.pretrained import resolve_pretrained

    d, opt, sched, trainer = cfg["data"], cfg["optimizer"], cfg["scheduler"], cfg["trainer"]
    precision = resolved_precision(str(trainer["precision"]))
    spec = {
        "train_csv": files["train"],
        "dev_csv": files["dev"],
        "model_dir": resolve_pretrained(cfg["model"]["net"]["pretrained"]),
        "seed": cfg["seed"],
        "batch_size": d["batch_size"],
        "eval_batch_size": d["eval_batch_size"],
        "max_length": d["max_length"],
        "group_by_length": bool(d["group_by_length"]),
        "pad_to_multiple_of": pad_multiple(precision, device_type()),  # the project's collator rule
        "lr": opt["lr"],
        "weight_decay": opt["weight_decay"],
        "betas": list(opt["betas"]),
        "eps": opt["eps"],
        "fused": opt.get("fused"),
        "warmup_ratio": sched.get("warmup_ratio") or 0.0,
        "clip": trainer["gradient_clip_val"],
        "project_precision": precision,
    }
    checks = {
        "optimizer": (opt["_target_"], "torch.optim.AdamW"),
        "scheduler": (sched.get("name"), "linear"),
        "scheduler.warmup_steps": (sched.get("warmup_steps") or 0, 0),
        "param_groups.layer_decay": (cfg.get("param_groups", {}).get("layer_decay"), None),
        "param_groups.head_lr": (cfg.get("param_groups", {}).get("head_lr"), None),
        "trainer.accumulate_grad_batches": (trainer.get("accumulate_grad_batches"), 1),
        "trainer.gradient_clip_algorithm": (trainer.get("gradient_clip_algorithm"), "norm"),
        "model.label_smoothing": (cfg["model"].get("label_smoothing"), 0.0),
    }
    mismatches = [f"{k}={got} (the other variants assume {want})" for k, (got, want) in checks.items() if got != want]
    return spec, mismatches


def variants(keys: list[str], d_overrides: list[str], bf16: bool) -> list[Variant]:
    """The selected variants, in a-e order."""
    every = {
        "a": Variant("a", report.NAMES["a"], module="benchmarks.plain_loop"),
        "b": Variant("b", report.NAMES["b"], module="benchmarks.hf_trainer", args=("--mode", "run_glue")),
        "c": Variant("c", report.NAMES["c"], module="benchmarks.hf_trainer", args=("--mode", "fastest")),
        "d": Variant("d", report.NAMES["d"], overrides=tuple(d_overrides)),
        "e": Variant("e", report.NAMES["e"], overrides=(*d_overrides, *fastest_overrides(bf16))),
        # What freezing the word embeddings (half of MiniLM's parameters) buys per step, and costs in accuracy.
        "f": Variant("f", report.NAMES["f"], overrides=(*d_overrides, "model.freeze_embeddings=true")),
    }
    return [every[k] for k in sorted(keys)]


def run_rounds(args: argparse.Namespace, chosen: list[Variant], spec_path: Path, result: dict) -> None:
    """Alternate the variants ``args.rounds`` times; record every run in ``result['runs']`` and save as we go."""
    for round_no in range(1, args.rounds + 1):
        for variant in chosen:
            run_dir = WORK_DIR / "runs" / f"r{round_no}_{variant.key}"
            shutil.rmtree(run_dir, ignore_errors=True)
            extra = () if variant.module else (f"hydra.run.dir={run_dir}",)
            load = os.getloadavg()[0]
            run = run_variant(variant, spec_path, WORK_DIR / f"logs/r{round_no}_{variant.key}.log", args.timeout, extra)
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # ~90 MB each; nothing reads them
            record = {"variant": variant.key, "name": variant.name, "round": round_no, "load_avg_1m": load, **run}
            if "error" not in run:
                record["derived"] = report.derive(run, args.target_acc)
                d = record["derived"]
                print(
                    f"[bench] round {round_no} ({variant.key}) {variant.name}: {d['samples_per_s']:.1f} samples/s,"
                    f" train {run['train_time_s']:.1f} s, final acc {d['final_acc']:.3f},"
                    f" peak {run['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
            else:
                print(f"[bench] round {round_no} ({variant.key}) {variant.name} FAILED: {run['error']}\n{run['log']}")
            result["runs"].append(record)
            args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out = args.out.resolve()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files = data.prepare(WORK_DIR, args.sentences, args.seed, args.dev_sentences)
    bf16 = has_bf16()
    d_overrides = project_overrides(files, args.seed)
    spec, mismatches = loop_spec(composed_config(d_overrides), files)
    for line in mismatches:
        print(f"[bench] warning: project default {line}")
    if args.sentences % (4 * spec["batch_size"]):
        print(
            f"[bench] note: {args.sentences} sentences are not a multiple of {4 * spec['batch_size']}: the "
            "project's last validation comes before the last batch, the others evaluate after it too"
        )
    spec_path = WORK_DIR / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    chosen = variants(args.keys, d_overrides, bf16)
    meta = {
        "date": datetime.date.today().isoformat(),
        "sentences": args.sentences,
        "dev_sentences": len(data.read_csv(Path(files["dev"]))[0]),
        "rounds": args.rounds,
        "seed": args.seed,
        "batch_size": spec["batch_size"],
        "target_acc": args.target_acc,
        "variants": args.keys,
        "files": files,
        "spec": spec,
        "warnings": mismatches,
        "overrides": {v.key: list(v.overrides) for v in chosen if not v.module},
        "machine": machine_info(),
    }
    result: dict[str, Any] = {"meta": meta, "runs": [], "startup": {}}
    print(f"[bench] {args.sentences} sentences, {args.rounds} round(s), variants {','.join(args.keys)}", flush=True)
    result["startup"] = {
        "cfg_job": time_command(["train.py", "--cfg", "job"]),
        "help": time_command(["train.py", "--help"]),
        "data_prep": data_prep.measure(data_prep.SST2),  # full SST-2: first run, then second on the warm cache
    }
    run_rounds(args, chosen, spec_path, result)
    for line in check_padding(spec, result["runs"]):
        print(f"[bench] warning: {line}")
        meta["warnings"].append(line)
    result["summary"] = report.summarize(result["runs"])
    result["ratios"] = report.ratios(result["summary"])
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    text = report.markdown(result)
    args.out.write_text(text)
    print(text)
    print(f"[bench] wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
