"""A run dir is data, never code (``finetune.run.saved``): the allow-list of targets, remote code, damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from finetune.errors import UserError
from finetune.run.outcome import summary_damaged
from finetune.run.resume import unfinished
from finetune.run.saved import check_saved_targets, read_saved_config, read_saved_overrides
from tests.conftest import ROOT

SECTIONS = {"data": {}, "model": {}, "trainer": {}, "paths": {}}


def _run_dir(tmp_path: Path, config: dict, overrides: list | None = None) -> Path:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides or []))
    return run


def test_every_target_the_project_configs_name_is_allowed() -> None:
    from hydra import compose, initialize_config_dir

    groups = ["optimizer", "scheduler", "callbacks", "logger", "trainer", "adapter", "model", "data", "experiment"]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        for group in groups:
            for option in sorted((ROOT / "conf" / group).glob("[!_]*.yaml")):
                overrides = [f"{group}={option.stem}"]
                if group == "model" and option.stem == "linear":
                    overrides.append("experiment=linear_regression")
                check_saved_targets(compose("train", overrides=overrides), f"{group}={option.stem}")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("optimizer", {"_target_": "builtins.open", "file": "victim"}),
        ("callbacks", {"copy": {"_target_": "shutil.copyfile", "src": "a", "dst": "b"}}),
        ("task", {"module": "os.system"}),  # reached through model._target_: ${task.module}
        ("model", {"_target_": "${task.module}", "net": {"trust_remote_code": True}}),
    ],
)
def test_a_saved_config_naming_other_code_is_refused_unless_trusted(tmp_path: Path, setting: str, value) -> None:
    config = {"task": {"module": "finetune.models.SequenceClassifier"}, "model": {"_target_": "${task.module}"}}
    run = _run_dir(tmp_path, {**SECTIONS, **config, setting: value})
    with pytest.raises(
        UserError, match=r"^run=R: .*(not one of this project's classes|would run code).*trust_run=true"
    ):
        read_saved_config(run, "run=R")
    assert read_saved_config(run, "run=R", trust_run=True)[setting] is not None


@pytest.mark.parametrize(
    "text", ["model:\n  net: [unclosed\n", "- a list\n- not settings\n", "\x00\x01", "model: {}\n"]
)
def test_a_damaged_config_is_one_line(tmp_path: Path, text: str) -> None:
    run = _run_dir(tmp_path, {})
    (run / ".hydra" / "config.yaml").write_text(text)
    with pytest.raises(UserError, match=r"^run=R: .hydra/config.yaml is damaged.*cannot be used"):
        read_saved_config(run, "run=R")
    (run / ".hydra" / "overrides.yaml").write_text("- [unclosed")
    with pytest.raises(UserError, match=r"overrides.yaml is damaged"):
        read_saved_overrides(run, "run=R")


def test_a_run_with_a_damaged_summary_is_never_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run / "run_identity.json").write_text(json.dumps({"identity": "abc"}))
    assert unfinished(run, "abc")  # killed before it wrote a summary: resumed
    (run / "metrics.json").write_text('{"status": "compl')  # cut: it may have completed
    assert summary_damaged(run) and not unfinished(run, "abc")


def test_the_allow_list_reads_resolved_targets() -> None:
    config = OmegaConf.create(
        {"task": {"module": "finetune.models.TokenClassifier"}, "model": {"_target_": "${task.module}"}}
    )
    check_saved_targets(config, "run=R")  # no error: it resolves to a project class


def test_a_record_linked_out_of_the_run_is_refused(tmp_path: Path) -> None:
    from finetune.run.saved import check_no_links_out

    run = _run_dir(tmp_path, SECTIONS)
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY\n")
    check_no_links_out(run, "run=R")
    (run / "provenance.json").symlink_to(secret)
    with pytest.raises(UserError, match=r"^run=R: provenance.json is a link to .*id_rsa, outside the run"):
        check_no_links_out(run, "run=R")
    (run / "provenance.json").unlink()
    (run / "provenance.json").symlink_to(run / ".hydra" / "config.yaml")  # a link inside the run is its own file
    check_no_links_out(run, "run=R")


def _saved_run(tmp_path: Path, cfg) -> Path:
    run = tmp_path / "earlier"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
    )
    return run


@pytest.mark.parametrize(
    ("here", "expected"),
    [
        (["data.max_train_samples=65"], r"data.max_train_samples is 65 here but 64 in the run"),
        (["model.net.config_overrides.hidden_size=64"], r"model.net.config_overrides.hidden_size is 64 here but 32"),
        (
            ["trainer.max_epochs=1"],
            r"the run completed with trainer.max_epochs=2, trainer.max_steps=-1; .* trains nothing more",
        ),
        (["trainer.max_epochs=2"], r"the run .* trains nothing more"),
        (["trainer.max_epochs=3", "trainer.max_steps=1"], r"the run .* trains nothing more"),  # the step budget shrank
        (["trainer.max_epochs=3"], None),
        (["trainer.max_epochs=3", "data.num_workers=1", "model.compile=true"], None),  # how, not what
    ],
)
def test_resume_of_a_named_run_proves_the_config_fits(make_cfg, tmp_path: Path, here: list, expected) -> None:
    from finetune.run.resume import ResumePlan
    from finetune.run.resume_fit import check_resume_fits

    run = _saved_run(tmp_path, make_cfg("data.max_train_samples=64", "trainer.max_epochs=2", "trainer.max_steps=-1"))
    cfg = make_cfg("data.max_train_samples=64", "trainer.max_steps=-1", "trainer.max_epochs=2", *here, f"resume={run}")
    plan = ResumePlan(tmp_path / "launch", run, run / "checkpoints" / "last.ckpt", 8, "id", status="completed")
    if expected is None:
        check_resume_fits(cfg, plan)
        return
    with pytest.raises(UserError, match=rf"^resume={run}: {expected}"):
        check_resume_fits(cfg, plan)
    plan.status = "interrupted"  # an unfinished run may continue on a smaller budget; other data never
    if "trainer" in here[0]:
        check_resume_fits(cfg, plan)


def test_a_run_saved_before_the_adapter_group_was_renamed_reads_as_adapter(tmp_path: Path) -> None:
    lora = {"_target_": "peft.LoraConfig", "_partial_": True, "r": 4}
    run = _run_dir(tmp_path, {**SECTIONS, "peft": lora, "model": {"peft": lora}})
    config = read_saved_config(run, "run=R")
    assert "peft" not in config and config.adapter.r == 4 and config.model.adapter._target_ == "peft.LoraConfig"
    assert yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["peft"] == lora  # the run dir is unchanged
