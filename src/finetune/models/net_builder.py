"""``NetBuilder``: a network built when Lightning asks for it, and the saved run's network built on the meta device.

``train()`` hands the module a builder, not a network: Lightning calls ``configure_model`` once the strategy is
set up, inside its device, sharding and precision contexts, so the weights are created where they will live (on
the GPU, in bf16 under ``bf16-true``) instead of on the CPU in float32 first. What the module needs before then
(the data's label names and problem type) travels with the builder as ``settings``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class NetBuilder:
    """Builds the network from its config partial (``cfg.model.net``) and the data's ``model_kwargs``.

    A plain class, not a dataclass: Hydra's ``instantiate`` would turn a dataclass argument into a config node.

    Args:
        build: the network's builder (e.g. ``finetune.hf.hf_model`` with the model options bound).
        settings: what the data gives the builder (``label_names``, ``problem_type``), known before the build.
    """

    def __init__(self, build: Callable[..., torch.nn.Module], settings: dict[str, Any] | None = None) -> None:
        self.build, self.settings = build, dict(settings or {})

    def __call__(self) -> torch.nn.Module:
        return self.build(**self.settings)


def built_for(net: torch.nn.Module | NetBuilder) -> dict[str, Any]:
    """The label names and problem type a network is (or will be) built for: a builder's settings, or read from a
    built Hugging Face network's config."""
    if isinstance(net, NetBuilder):
        return dict(net.settings)
    config = net.config
    return {
        "label_names": [config.id2label[i] for i in range(config.num_labels)],
        "problem_type": getattr(config, "problem_type", None),
    }


def on_meta_device(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """A network's structure without memory for its weights, to be filled with ``load_state_dict(assign=True)``:
    a saved run's checkpoint holds every weight, so initialising them first would be time and memory spent for
    nothing (for a 7B model, minutes and 28 GB)."""
    with torch.device("meta"):
        return build()


def check_materialised(net: torch.nn.Module) -> None:
    """Raise if a meta-device build left a tensor without values (a buffer no checkpoint holds)."""
    left = [name for name, tensor in (*net.named_parameters(), *net.named_buffers()) if tensor.is_meta]
    if left:
        raise RuntimeError(f"{type(net).__name__} has tensors its checkpoint does not fill ({left[:3]})")
