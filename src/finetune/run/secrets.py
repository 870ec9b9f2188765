"""Keep secrets out of what a run writes: saved Hydra configs, the config tree, tracker configs, run names.

A secret is the value of a key named like a credential (``api_key``, ``hf_token``, ``password``) or any text equal
to the value of a credential environment variable (``WANDB_API_KEY``, ``HF_TOKEN``, ...). Both become ``***``.
Kept free of torch imports: Hydra instantiates ``RedactSavedConfigs`` before any job runs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from finetune import atomic

log = logging.getLogger(__name__)

MASK = "***"
ALWAYS_SECRET_ENV = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MIN_SECRET_LENGTH = 8  # shorter env values ("1", "true") would mask ordinary text everywhere
# Hydra's launchers log each job's overrides ("#0 : +api_key=...") before our code runs.
LAUNCHER_LOGGERS = (
    "hydra._internal.core_plugins.basic_launcher",
    "hydra_plugins.hydra_joblib_launcher._core",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
)

# Word parts: split at non-alphanumerics and camelCase humps, so apiKey, API_KEY and api-key all give api, key.
_PART_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_SECRET_PARTS = frozenset(
    {
        "token", "secret", "secrets", "password", "passwd", "passphrase", "credential", "credentials",
        "auth", "authorization", "oauth", "apikey", "apitoken", "accesstoken", "authtoken", "hftoken",
        "secretkey", "accesskey", "privatekey",
    }
)  # fmt: skip
_KEY_QUALIFIERS = frozenset({"api", "access", "private", "secret", "auth", "client", "signing", "encryption", "ssh"})
# Tokenizer vocabulary, not credentials: pad_token, eos_token, additional_special_tokens, max_new_tokens.
_TOKEN_NOT_SECRET = frozenset(
    {"pad", "bos", "eos", "cls", "sep", "unk", "mask", "sos", "special", "additional", "start", "end", "decoder"}
)
# key=value in override strings and run names; the value ends at the item separator or whitespace.
_OVERRIDE = re.compile(r"(?<![\w.])([+~]{0,2}[A-Za-z_][\w.\-]*)=('[^']*'|\"[^\"]*\"|[^,\s]*)")


def is_secret_key(name: str) -> bool:
    """True when a config key or env var name looks like a credential; only the last dotted part counts."""
    parts = [p.lower() for p in _PART_SPLIT.split(str(name).rsplit(".", 1)[-1]) if p]
    for i, part in enumerate(parts):
        if part == "token" and _TOKEN_NOT_SECRET.intersection(parts):
            continue
        if part in _SECRET_PARTS:
            return True
        if part in ("key", "keys") and i > 0 and parts[i - 1] in _KEY_QUALIFIERS:
            return True
    return False


def secret_env_values() -> list[str]:
    """Values of credential env vars (longest first, so a value containing another is masked whole)."""
    values = set()
    for name, value in os.environ.items():
        if len(value) < MIN_SECRET_LENGTH:
            continue
        # A path (SSH_AUTH_SOCK, a credentials file) points at a secret but is none: masking it would garble paths.
        if name in ALWAYS_SECRET_ENV or (is_secret_key(name) and not os.path.exists(value)):
            values.add(value)
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, env_values: list[str] | None = None) -> str:
    """``text`` with credential env values and the values of ``secret_key=value`` overrides masked."""
    for value in secret_env_values() if env_values is None else env_values:
        text = text.replace(value, MASK)
    return _OVERRIDE.sub(lambda m: f"{m[1]}={MASK}" if is_secret_key(m[1]) and m[2] else m[0], text)


def redact_argv_secrets(text: str) -> str:
    """``redact_text``, and the values of this command's secret overrides wherever they appear in ``text``."""
    values = [m[2].strip("'\"") for arg in sys.argv[1:] for m in _OVERRIDE.finditer(arg) if is_secret_key(m[1])]
    for value in sorted((v for v in values if len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, MASK)
    return redact_text(text)


class RedactingStream:
    """A text stream that masks this command's secrets (``redact_argv_secrets``) in everything written to it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(redact_argv_secrets(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding ... of the real stream
        return getattr(self.stream, name)


@contextmanager
def redacted_argv() -> Iterator[None]:
    """``sys.argv`` with secret overrides masked, for code that records it (wandb's run metadata).

    Restored afterwards: Lightning's DDP launcher starts the other ranks with the real ``sys.argv``.
    """
    original = sys.argv[:]
    sys.argv[1:] = [redact_text(arg) for arg in original[1:]]
    try:
        yield
    finally:
        sys.argv[:] = original


def redact(container: Any, resolve: bool = False) -> Any:
    """A plain (dict/list) copy of a config or plain container with every secret masked; the input is untouched.

    Args:
        container: a ``DictConfig``/``ListConfig``, or plain dicts, lists and scalars.
        resolve: resolve interpolations first (what the run used) instead of keeping ``${...}`` text.
    """
    return _redact(container, secret_env_values(), resolve)


def _redact(value: Any, env_values: list[str], resolve: bool = False) -> Any:
    if OmegaConf.is_config(value):  # also configs nested in plain dicts, as {k: cfg[k] for k in cfg}
        value = OmegaConf.to_container(value, resolve=resolve)
    if isinstance(value, dict):
        return {k: _mask(v) if is_secret_key(str(k)) else _redact(v, env_values, resolve) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, env_values, resolve) for v in value]
    if isinstance(value, str):
        return redact_text(value, env_values)
    return value


def _mask(value: Any) -> Any:
    # Unset and on/off values hold no secret (use_auth_token: true) and show what the run did.
    return value if value is None or isinstance(value, bool) or value == "" else MASK


def redact_yaml_file(path: Path) -> bool:
    """Rewrite a YAML file Hydra saved with its secrets masked; True if anything changed."""
    if not path.is_file():
        return False
    original = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    redacted = _redact(original, secret_env_values())
    if redacted == original:
        return False
    atomic.write_text(path, OmegaConf.to_yaml(OmegaConf.create(redacted)))  # never a half-written config
    return True


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's text (applied to the loggers it is attached to)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage()), None
        return True


class RedactSavedConfigs(Callback):
    """Masks secrets in the configs Hydra saves: ``.hydra/{config,hydra,overrides}.yaml`` and ``multirun.yaml``.

    Hydra writes a job's files just before ``on_job_start``; the sweeper writes ``multirun.yaml`` after
    ``on_multirun_start``, so each job start (and the sweep's end) masks that one too.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        for name in LAUNCHER_LOGGERS:
            if not any(isinstance(f, RedactingFilter) for f in logging.getLogger(name).filters):
                logging.getLogger(name).addFilter(RedactingFilter())

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = config.hydra.output_subdir
        if subdir is not None:
            hydra_dir = Path(config.hydra.runtime.output_dir) / subdir
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                redact_yaml_file(hydra_dir / name)
        if str(config.hydra.mode) == "RunMode.MULTIRUN":
            self.on_multirun_end(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        redact_yaml_file(Path(config.hydra.sweep.dir) / "multirun.yaml")
