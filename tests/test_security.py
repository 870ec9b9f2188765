"""Security: secrets never reach what a run writes, remote code stays off, checkpoints load with weights_only."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from finetune.run.secrets import MASK, RedactSavedConfigs, is_secret_key, redact, redact_text
from tests.conftest import ROOT

SECRET = "supersecretvalue123"
HF_SECRET = "hf_abcdefghijklmnop"


@pytest.mark.parametrize(
    "name",
    ["api_key", "apiKey", "APIKEY", "WANDB_API_KEY", "HF_TOKEN", "token", "hub_token", "password", "db.passwd",
     "client_secret", "credentials", "auth", "use_auth_token", "logger.wandb.api_key", "+wandb_api_key",
     "aws_secret_access_key", "private_key"],
)  # fmt: skip
def test_secret_key_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    ["tokenizer", "data.tokenizer", "pad_token", "eos_token_id", "additional_special_tokens", "max_tokens",
     "num_tokens", "max_length", "author", "cache_key", "key", "monitor", "TOKENIZERS_PARALLELISM", "PWD"],
)  # fmt: skip
def test_ordinary_key_names_are_not_secret(name: str) -> None:
    assert not is_secret_key(name)


def test_redact_masks_nested_keys_lists_and_env_values(monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", HF_SECRET)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "short")  # under 8 characters: would mask ordinary text
    cfg = OmegaConf.create(
        {
            "logger": {"wandb": {"api_key": SECRET, "project": "p", "use_auth_token": True, "token": None}},
            "data": {"tokenizer": "bert-base-uncased", "pad_token": "[PAD]", "max_length": 128},
            "notes": [HF_SECRET, {"password": 1234}, f"x-{HF_SECRET}-y", "short"],
            "overrides": ["+api_key=abc", "optimizer=adam"],
        }
    )
    before = OmegaConf.to_yaml(cfg)
    out = redact(cfg)
    assert isinstance(out, dict) and isinstance(out["notes"], list)  # plain copies
    assert out["logger"]["wandb"] == {"api_key": MASK, "project": "p", "use_auth_token": True, "token": None}
    assert out["data"] == {"tokenizer": "bert-base-uncased", "pad_token": "[PAD]", "max_length": 128}
    assert out["notes"] == [MASK, {"password": MASK}, f"x-{MASK}-y", "short"]
    assert out["overrides"] == [f"+api_key={MASK}", "optimizer=adam"]
    assert OmegaConf.to_yaml(cfg) == before  # the input is untouched
    plain = {"a": {"secret": "s3cr3t-value"}}
    assert redact(plain) == {"a": {"secret": MASK}} and plain["a"]["secret"] == "s3cr3t-value"


def test_redact_text_masks_secret_overrides_only(monkeypatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    text = f"optimizer=adam,+hf_token='a b',data.tokenizer=bert,note={SECRET},logger.wandb.api_key=xyz"
    assert (
        redact_text(text)
        == f"optimizer=adam,+hf_token={MASK},data.tokenizer=bert,note={MASK},logger.wandb.api_key={MASK}"
    )


def test_callback_rewrites_saved_hydra_files_and_multirun_yaml(tmp_path: Path) -> None:
    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    saved = {"config.yaml": {"api_key": SECRET, "lr": 0.1}, "overrides.yaml": [f"+api_key={SECRET}", "lr=0.1"]}
    saved["hydra.yaml"] = {"hydra": {"job": {"override_dirname": f"+api_key={SECRET},lr=0.1"}}}
    for name, content in saved.items():
        OmegaConf.save(OmegaConf.create(content), job / ".hydra" / name)
    OmegaConf.save(OmegaConf.create({"api_key": SECRET, "ref": "${lr}"}), tmp_path / "multirun.yaml")
    hydra = {"runtime": {"output_dir": str(job)}, "output_subdir": ".hydra", "mode": "RunMode.MULTIRUN"}
    RedactSavedConfigs().on_job_start(OmegaConf.create({"hydra": {**hydra, "sweep": {"dir": str(tmp_path)}}}))
    for path in [*(job / ".hydra").iterdir(), tmp_path / "multirun.yaml"]:
        assert SECRET not in path.read_text() and MASK in path.read_text(), path
    assert OmegaConf.load(job / ".hydra" / "overrides.yaml") == [f"+api_key={MASK}", "lr=0.1"]
    assert "${lr}" in (tmp_path / "multirun.yaml").read_text()  # interpolations stay as written
    assert not list(tmp_path.rglob("*.tmp"))


def test_config_tree_tracker_config_and_run_name_are_redacted(make_cfg, tmp_path: Path) -> None:

    from finetune.run.summary import log_hyperparameters, print_config_tree
    from finetune.trainer.loggers import job_name_and_group

    cfg = make_cfg(f"+wandb_api_key={SECRET}", "+logger.wandb.token=tok-1234567890")
    print_config_tree(cfg, save_to=tmp_path / "tree.log")
    tree = (tmp_path / "tree.log").read_text()
    assert SECRET not in tree and "tok-1234567890" not in tree and MASK in tree

    class Recorder:
        def __init__(self) -> None:
            self.params: dict = {}

        def log_hyperparams(self, params: dict) -> None:
            self.params = params

    recorder = Recorder()
    log_hyperparameters(type("T", (), {"loggers": [recorder]})(), cfg)
    assert recorder.params["wandb_api_key"] == MASK and recorder.params["logger"]["wandb"]["token"] == MASK
    assert OmegaConf.select(cfg, "wandb_api_key") == SECRET  # the run itself still sees the real value
    name, _ = job_name_and_group(cfg.task_name)
    assert SECRET not in name and f"+wandb_api_key={MASK}" in name


@pytest.fixture(scope="module")
def secret_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One real ``train.py`` run (CSV + offline wandb) given a secret override and a secret env var."""
    log_dir = tmp_path_factory.mktemp("secret_run")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true", "HF_TOKEN": HF_SECRET}
    env.pop("WANDB_API_KEY", None)  # wandb stays offline
    env["NETRC"] = str(log_dir / "no-netrc")
    args = ["model=tiny_random", "debug=limit", "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0"]
    args += ["task_name=secret", f"tags=[{HF_SECRET}]", f"paths.log_dir={log_dir}"]
    result = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (log_dir / "secret" / "runs").iterdir()
    return run_dir, result


def test_no_secret_in_any_file_a_run_writes(secret_run) -> None:
    run_dir, result = secret_run
    files = [p for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    assert list(run_dir.glob("wandb/offline-run-*/run-*.wandb")) and (run_dir / "csv" / "hparams.yaml").is_file()
    for path in files:  # yaml, log, json, csv, the binary .wandb records and the checkpoints, as bytes
        data = path.read_bytes()
        assert SECRET.encode() not in data and HF_SECRET.encode() not in data, path
    for output in (result.stdout, result.stderr):
        assert SECRET not in output and HF_SECRET not in output
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert list(config.tags) == [MASK]
    assert f"tags=[{MASK}]" in (run_dir / ".hydra" / "overrides.yaml").read_text()


def run_with_secret(log_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true", "NETRC": str(log_dir / "no-netrc")}
    env.pop("WANDB_API_KEY", None)
    common = ["model=tiny_random", "debug=limit", "logger=csv", "callbacks.progress_bar.refresh_rate=0"]
    return subprocess.run(
        [sys.executable, "train.py", *common, *args, f"paths.log_dir={log_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip


def files_hold(folder: Path, secret: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow
def test_a_secret_override_nothing_reads_is_refused_without_showing_it(tmp_path: Path) -> None:
    result = run_with_secret(tmp_path, f"+my_api_key={SECRET}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: my_api_key is not a setting")
    assert SECRET not in result.stdout + result.stderr and not files_hold(tmp_path, SECRET)


@pytest.mark.slow
def test_a_crash_prints_its_traceback_with_secrets_masked(tmp_path: Path) -> None:
    crash = "+callbacks.crash._target_=tests.helpers.signals.CrashAtStep"
    result = run_with_secret(tmp_path, crash, f"+callbacks.crash.api_key={SECRET}")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: simulated crash" in result.stderr
    assert SECRET not in result.stdout + result.stderr and not files_hold(tmp_path, SECRET)
    (run,) = (tmp_path / "debug" / "runs").iterdir()
    assert "simulated crash" in (run / "traceback.txt").read_text()


def test_checkpoint_of_a_real_run_loads_with_weights_only(secret_run) -> None:
    from finetune.trainer.checkpoints import read_checkpoint

    run_dir, _ = secret_run
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    assert checkpoints
    for path in checkpoints:
        checkpoint = read_checkpoint(path)  # torch.load(weights_only=True): no pickled code or Hydra containers
        assert checkpoint["state_dict"] and "datamodule_hyper_parameters" in checkpoint
        assert isinstance(checkpoint["datamodule_hyper_parameters"]["label_names"], list | type(None))


@pytest.fixture
def from_pretrained_calls(monkeypatch) -> list[dict]:
    """Replace transformers' loaders by recorders of their keyword arguments."""
    import transformers

    calls: list[dict] = []

    def record(source: str, **kwargs) -> str:
        calls.append({"source": source, **kwargs})
        return "loaded"

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", record)
    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", record)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", record)
    return calls


@pytest.mark.parametrize("model", ["minilm", "bert_base", "distilbert", "roberta_base"])
def test_trust_remote_code_is_off_by_default(model: str, make_cfg, from_pretrained_calls, caplog) -> None:
    from hydra.utils import instantiate

    from finetune.hf.pretrained import load_tokenizer

    cfg = make_cfg(f"model={model}", "logger=csv", fast=False)
    assert cfg.model.net.trust_remote_code is False
    with caplog.at_level(logging.WARNING):
        instantiate(cfg.model.net)(label_names=["neg", "pos"])
        load_tokenizer(cfg.data.tokenizer)
    assert [c["trust_remote_code"] for c in from_pretrained_calls] == [
        False,
        False,
        False,
    ]  # config, weights, tokenizer
    assert "trust_remote_code" not in caplog.text


def test_trust_remote_code_when_turned_on_warns_naming_the_model(make_cfg, from_pretrained_calls, caplog) -> None:
    from hydra.utils import instantiate

    from finetune.hf.pretrained import load_tokenizer

    cfg = make_cfg("model=bert_base", "model.net.trust_remote_code=true", "logger=csv", fast=False)
    with caplog.at_level(logging.WARNING):
        instantiate(cfg.model.net)(label_names=["neg", "pos"])
        load_tokenizer("org/custom-model", trust_remote_code=True)
    assert [c["trust_remote_code"] for c in from_pretrained_calls] == [True, True, True]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("trust_remote_code=true" in w and "bert-base-uncased" in w for w in warnings)
    assert any("trust_remote_code=true" in w and "org/custom-model" in w for w in warnings)


def test_git_diff_is_masked_like_every_other_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from finetune.run import provenance

    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz123456")
    diff = "--- a/conf/local.yaml\n+++ b/conf/local.yaml\n+token: hf_abcdefghijklmnopqrstuvwxyz123456\n"
    provenance.write(tmp_path, {"git": {"commit": "abc"}, "diff": diff})
    written = (tmp_path / "git.diff").read_text()
    assert "hf_abcdefghijklmnopqrstuvwxyz123456" not in written and "+token: ***" in written
