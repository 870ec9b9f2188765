"""The ``README.md`` of an exported model: how to load it, what it was trained from and on, how well it did, and
what it is not for. Every fact comes from the run's files (config, ``metrics.json``, ``provenance.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from finetune.hf.packaged import SCHEME
from finetune.run import provenance
from finetune.use.finished import FinishedRun

# An adapter folder: the base comes from adapter_config.json's base_model_name_or_path, the head from the adapter.
ADAPTER_USAGE = (
    "from peft import {peft_class}\n"
    "from transformers import AutoTokenizer\n\n"
    'model = {peft_class}.from_pretrained("{folder}"{labels})\n'
    'tokenizer = AutoTokenizer.from_pretrained("{folder}")'
)


def front_matter(task: str, base: dict[str, Any] | None, dataset: str | None) -> dict[str, Any]:
    """The card's metadata for the Hub: pipeline, library, and the base model when it is a hub name."""
    meta: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": task, "tags": ["finetune", task]}
    name = (base or {}).get("name") or ""
    if name and not name.startswith(SCHEME) and not Path(name).exists() and not (base or {}).get("random_init"):
        meta["base_model"] = name
    if dataset and "/" in dataset and not dataset.startswith("finetune/"):
        meta["datasets"] = [dataset]
    return meta


def model_card(
    finished: FinishedRun, module: Any, datamodule: Any, labels: list[str] | None, folder: str, adapter: bool = False
) -> str:
    """The card's markdown (YAML front matter first). The usage example and what the model does come from the
    task (``TaskHooks.card_usage``, ``card_purpose``), the input limits from its data (``card_limits``);
    ``adapter``: the folder holds a peft adapter."""
    task = module.pipeline_task
    record = provenance.read(finished.run_dir)
    summary, config = finished.summary, finished.config
    net = (config.get("model") or {}).get("net") or {}
    data = record.get("data") or {}
    base = record.get("base_model") or {"name": net.get("pretrained"), "random_init": net.get("random_init", False)}
    meta = front_matter(task, base, data.get("dataset"))
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", ""]
    lines += [f"# {task} fine-tuned from `{base.get('name') or 'a network built from a config'}` on "
              f"`{data.get('dataset') or (config.get('data') or {}).get('dataset')}`", ""]  # fmt: skip
    lines += ["## How to use", "", "```python", "from transformers import pipeline", ""]
    if adapter:
        lines += [_adapter_usage(config, task, labels, folder), ""]
    usage = module.card_usage.format(folder=folder, example=module.card_example)
    lines += [usage.replace(f'model="{folder}"', "model=model, tokenizer=tokenizer") if adapter else usage, "```", ""]
    if labels:
        lines += ["## Labels", "", ", ".join(f"`{name}`" for name in labels), ""]
    lines += ["## Results", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in sorted(finished.test_metrics.items())]
    lines += ["", f"Data: {_split_text(data)}.", ""]
    lines += ["## Training", "", *_training_facts(finished, record, base, data, summary, config), ""]
    lines += ["## Intended use and limits", "", *_limits(module.card_purpose(labels), data, datamodule), ""]
    return "\n".join(lines)


def _training_facts(
    finished: FinishedRun,
    record: dict[str, Any],
    base: dict[str, Any],
    data: dict[str, Any],
    summary: dict[str, Any],
    config: Any,
) -> list[str]:
    git = record.get("git") or {}
    hardware = record.get("hardware") or {}
    gpus = ", ".join(hardware.get("gpu") or []) or "none"
    files = data.get("files") or {}
    file_lines = [
        f"  - {split}: `{f['path']}` ({f['bytes']} bytes, sha256 `{f['sha256']}`)" for split, f in files.items()
    ]
    packages = ", ".join(f"{name} {version}" for name, version in (record.get("packages") or {}).items())
    return [
        f"- Base model: `{base.get('name')}`"
        + (f", weights sha256 `{base['sha256']}`" if base.get("sha256") else "")
        + (" (random initialisation from its config)" if base.get("random_init") else ""),
        f"- Data: `{data.get('dataset')}`" + (f" ({data['subset']})" if data.get("subset") else ""),
        *(file_lines or ["  - from the hub or generated: no local files"]),
        f"- Command: `{' '.join(record.get('command') or ['?'])}`",
        f"- Overrides: {', '.join(f'`{o}`' for o in _overrides(finished.run_dir)) or 'none'}",
        f"- Seeds: {json.dumps(record.get('seeds') or {'seed': config.get('seed')})}",
        f"- Steps: {summary.get('global_step')} in {summary.get('epochs')} epoch(s), stopped by "
        f"{summary.get('stop_reason')}; {summary.get('run_time_s')} s; precision {summary.get('precision')}",
        f"- Hardware: {hardware.get('cpu', '?')} ({hardware.get('cpu_count', '?')} cores); GPUs: {gpus}",
        f"- Packages: {packages or 'not recorded'}; Python {record.get('python', '?')}",
        f"- Code: commit `{git.get('commit', 'unknown')}`" + (" with uncommitted changes" if git.get("dirty") else ""),
        f"- Run: `{finished.run_dir}`, identity `{_identity(finished.run_dir)}`, "
        f"checkpoint `{finished.checkpoint.name}`",
    ]


def _limits(purpose: str, data: dict[str, Any], datamodule: Any) -> list[str]:
    return [
        f"- It {purpose}, for inputs like those of `{data.get('dataset')}`; it knows no other labels.",
        f"- It was trained on {_split_text(data)} only: expect lower quality on other domains, languages and styles.",
        *(f"- {line}" for line in datamodule.card_limits()),
        "- The test figures above come from one seeded run on held-out data of the same source; they do not "
        "measure fairness, robustness or safety.",
    ]


def _split_text(data: dict[str, Any]) -> str:
    sizes = data.get("split_sizes") or {}
    return ", ".join(f"{size} {split}" for split, size in sizes.items()) + " examples" if sizes else "unrecorded splits"


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []


def _identity(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "run_identity.json").read_text()).get("identity", "?")
    except (OSError, ValueError):
        return "?"


def _adapter_usage(config: Any, task: str, labels: list[str] | None, folder: str) -> str:
    """Loading the adapter with peft's Auto class of the task (``AutoModelFor<Task>`` → ``AutoPeftModelFor<Task>``);
    the head's size and label names are given, since the base model's own config does not know them."""
    auto_class = str(((config.get("model") or {}).get("net") or {}).get("auto_class") or "AutoModel")
    sizes = ""
    if labels:
        id2label = {i: name for i, name in enumerate(labels)}
        label2id = {name: i for i, name in enumerate(labels)}
        sizes = f", num_labels={len(labels)}, id2label={id2label}, label2id={label2id}"
    elif (config.get("data") or {}).get("problem_type") == "regression":
        sizes = ", num_labels=1"
    peft_class = auto_class.replace("AutoModel", "AutoPeftModel", 1)
    return ADAPTER_USAGE.format(peft_class=peft_class, folder=folder, labels=sizes)
