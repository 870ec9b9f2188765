"""What produced a run, so that it can be rerun and trusted: ``provenance.json`` in every run dir.

The git commit and whether the tree was dirty (the diff beside it in ``git.diff`` when it was), the versions of
the packages that matter, the command line, the hardware, the seeds, and the fingerprint (SHA-256) of every data
file. The same record goes to the trackers' config and into the exported model card.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from finetune import atomic

PROVENANCE_FILE = "provenance.json"
DIFF_FILE = "git.diff"
PACKAGES = ("torch", "lightning", "transformers", "datasets", "hydra-core", "omegaconf", "torchmetrics", "peft")
PACKAGES += ("wandb", "finetune")
SOURCE_ROOT = Path(__file__).resolve().parents[3]  # the checkout holding src/finetune (when run from one)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that change a run's result (absent ones are left out)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state() -> tuple[dict[str, Any] | None, str]:
    """The commit and dirtiness of the source checkout, and the diff of tracked files against it ('' if clean).

    None when the code does not run from a git checkout (an installed wheel).
    """
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, ""
    status = _git("status", "--porcelain", "--untracked-files=no") or ""
    diff = (_git("diff", "HEAD") or "") if status.strip() else ""
    untracked = (_git("ls-files", "--others", "--exclude-standard") or "").split()  # new files the diff misses
    return {"commit": commit.strip(), "dirty": bool(status.strip() or untracked), "untracked": untracked}, diff


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """CPU model and core count, GPU models and count (torch is loaded by then in a training process)."""
    facts: dict[str, Any] = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        count = torch.cuda.device_count()
        facts |= {"gpu": [torch.cuda.get_device_name(i) for i in range(count)], "gpu_count": count}
    else:
        facts |= {"gpu": [], "gpu_count": 0}
    return facts


def data_fingerprints(files: dict[str, Path] | None) -> dict[str, dict[str, Any]]:
    """Each data file's path, size and SHA-256 (hub datasets have none: their name and subset identify them)."""
    return {
        split: {"path": str(path), "bytes": Path(path).stat().st_size, "sha256": atomic.file_digest(Path(path))}
        for split, path in (files or {}).items()
        if path is not None and Path(path).is_file()
    }


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def base_model(net: Any) -> dict[str, Any] | None:
    """The pretrained model a run started from: its name and the SHA-256 of its weights file (a packaged model's
    published hash; a local folder's or the hub cache's file, when there is one); None for a network without one.
    """
    name = (net or {}).get("pretrained")
    if not name:
        return None
    record: dict[str, Any] = {"name": str(name), "random_init": bool(net.get("random_init", False))}
    from finetune.hf.packaged import PACKAGED_MODELS, SCHEME

    if str(name).startswith(SCHEME):
        record["sha256"] = PACKAGED_MODELS.get(str(name).removeprefix(SCHEME), {}).get("model.safetensors")
        return record
    weights = next((Path(name) / f for f in WEIGHT_FILES if (Path(name) / f).is_file()), None)
    if weights is None:  # a hub name: its file in the local cache, if downloaded
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(str(name), WEIGHT_FILES[0])
            weights = Path(cached) if isinstance(cached, str) else None
        except Exception:  # an odd name is not this record's business: the run's own loading reports it
            weights = None
    if weights is not None:
        record["sha256"] = atomic.file_digest(weights)
    return record


def collect(cfg: Any, datamodule: Any) -> dict[str, Any]:
    """The provenance record of this run (see the module docstring); ``git.diff`` is returned under ``diff``."""
    from finetune.run.secrets import redact_argv_secrets

    git, diff = git_state()
    source = getattr(datamodule, "source", None)
    files = source.files() if source is not None else None
    splits = getattr(datamodule, "splits", None) or {}
    data = cfg.get("data") or {}
    return {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": [sys.executable, *(redact_argv_secrets(arg) for arg in sys.argv)],
        "cwd": os.getcwd(),
        "git": git,
        "packages": package_versions(),
        "python": platform.python_version(),
        "hardware": hardware(),
        "seeds": {"seed": cfg.get("seed"), "data.seed": data.get("seed")},
        "base_model": base_model((cfg.get("model") or {}).get("net")),
        "data": {
            "dataset": data.get("dataset"),
            "subset": data.get("subset"),
            "files": data_fingerprints(files),
            "split_sizes": {split: len(rows) for split, rows in splits.items()},
        },
        "diff": diff,
    }


def write(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``provenance.json`` (and ``git.diff`` for a dirty tree); return the record without the diff."""
    record = dict(record)
    diff = record.pop("diff", "")
    if diff:  # masked as every other file of the run: a changed file may hold a token the environment has too
        from finetune.run.secrets import redact_argv_secrets

        atomic.write_text(run_dir / DIFF_FILE, redact_argv_secrets(diff))
        record["git"] = {**(record.get("git") or {}), "diff_file": DIFF_FILE}
    atomic.write_json(run_dir / PROVENANCE_FILE, record)
    return record


def read(run_dir: Path) -> dict[str, Any]:
    """The run's provenance record, or {} for a run made before it was kept."""
    import json

    try:
        record = json.loads((run_dir / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
