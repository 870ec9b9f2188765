"""A checkpoint's signature: what it is bound to (the task, the network's ``model_type``, the task's data-given
settings such as label names; ``TaskHooks.signature``). Every module saves one; the preflight compares it with
the signature the config and data would give before anything resumes or tests from the checkpoint."""

from __future__ import annotations

from typing import Any

from finetune.errors import UserError

SIGNATURE = "signature"  # the checkpoint's entry


def saved_signature(checkpoint: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's signature; one written before signatures existed is read from its hyperparameters
    (``model_type``, label names), and the task it does not name is taken as given."""
    if SIGNATURE in checkpoint:
        return dict(checkpoint[SIGNATURE])
    saved = checkpoint.get("hyper_parameters") or {}
    return {"task": expected.get("task"), **{k: saved.get(k) for k in expected if k != "task"}}


def check_signature(path: str, checkpoint: dict[str, Any], expected: dict[str, Any]) -> None:
    """Raise ``UserError`` naming each setting where the checkpoint differs from this config and data.

    Raises:
        UserError: another task, another kind of network, or other labels.
    """
    saved = saved_signature(checkpoint, expected)
    differ = [f"{key} {_shown(saved.get(key))} there, {_shown(value)} here" for key, value in expected.items()
              if saved.get(key) != value]  # fmt: skip
    if differ:
        raise UserError(
            f"checkpoint {path} does not fit this config and data: {'; '.join(differ)}; use the model and data "
            "it was trained with, or set ckpt_path=null"
        )


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
