"""What the GPU-only scripts and settings do on a machine without a GPU: a SKIP or one line, never a CPU run
and never a traceback. CUDA is hidden from the scripts, so the tests hold on a GPU machine as well."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from finetune.errors import UserError
from finetune.run.objects import check_accelerator
from finetune.run.preflight import check_launcher

ROOT = Path(__file__).resolve().parents[1]
NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PY": sys.executable, "HF_HUB_OFFLINE": "1"}


def test_gpu_check_skips_every_case_without_a_gpu(tmp_path: Path) -> None:
    env = {**NO_GPU, "OUT": str(tmp_path)}
    done = subprocess.run(["bash", "scripts/gpu_check.sh", "tiny"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("tiny ")]
    assert len(rows) == 7 and all(row[2] == "SKIP" for row in rows), done.stdout
    assert "no GPU on this machine" in done.stdout and "FAIL" not in done.stdout
    assert not (tmp_path / "runs").exists()  # nothing was trained


def test_gpu_benchmark_refuses_without_a_gpu() -> None:
    done = subprocess.run(["bash", "benchmarks/gpu.sh"], cwd=ROOT, env=NO_GPU, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: no CUDA GPU on this machine; --device cpu --steps 2 --tiny runs the smoke test"
    ]
    assert "samples/s" not in done.stdout


@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_gpu_trainer_without_a_gpu_is_one_line(monkeypatch: pytest.MonkeyPatch, accelerator: str) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=f"trainer.accelerator={accelerator} needs a CUDA GPU .*trainer=cpu"):
        check_accelerator(OmegaConf.create({"accelerator": accelerator}))
    check_accelerator(OmegaConf.create({"accelerator": "cpu"}))  # the CPU trainers pass


def test_slurm_launcher_without_slurm_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    slurm = OmegaConf.create({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"})
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(UserError, match="hydra/launcher=slurm needs SLURM \\(sbatch and srun not on"):
        check_launcher(slurm)
    check_launcher(OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}))
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    check_launcher(slurm)  # on a cluster it passes
