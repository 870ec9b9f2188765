"""An adapter run's export round trip on each text task with more than two labels (a 2-label test hides a head
reloaded at the wrong size): the adapter folder loads with peft's ``AutoPeftModelFor<Task>`` as the model card
says, the merged folder with transformers' ``AutoModelFor<Task>``, and both give the run's own logits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import peft
import pytest
import torch
import transformers

from finetune.use.finished import instantiate_data, open_run, trained_module
from tests.conftest import ROOT
from tests.helpers.commands import run_script, succeeded

pytestmark = pytest.mark.slow

# The packaged MiniLM (real weights: the base an exported adapter points at), a few LoRA steps, fp32.
COMMON = ["model=minilm", "adapter=lora", "adapter.r=4", "trainer.max_steps=6", "trainer.precision=32"]
COMMON += ["optimizer.lr=3e-3", "logger=csv", "callbacks.progress_bar.refresh_rate=0"]
SENTENCES = ["The battery lasts all day and the screen is sharp.", "Ada Lovelace visited London in June."]


def three_label_csv(folder: Path) -> list[str]:
    """The demo reviews relabelled into three classes (by length), as a train and a test file."""
    rows = [json.loads(line) for line in (ROOT / "src/finetune/data/demo/test.jsonl").read_text().splitlines()]
    for name, part in (("train", rows[:80]), ("test", rows[80:])):
        with (folder / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["text", "label"])
            writer.writeheader()
            for row in part:
                writer.writerow(
                    {"text": row["text"], "label": ("short", "medium", "long")[min(len(row["text"]) // 60, 2)]}
                )
    return ["data=csv", f"data.train_file={folder / 'train.csv'}", f"data.test_file={folder / 'test.csv'}"]


TASKS = {
    "sequence": (three_label_csv, "SequenceClassification"),
    "token": (
        lambda folder: ["experiment=ner", "data.max_train_samples=64", "data.max_eval_samples=32"],
        "TokenClassification",
    ),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_adapter_and_merged_exports_reload_to_the_runs_predictions(tmp_path: Path, task: str) -> None:
    data, auto = TASKS[task]
    run = tmp_path / "run"
    succeeded(run_script("train.py", *COMMON, *data(tmp_path), f"paths.log_dir={tmp_path}", f"hydra.run.dir={run}"))
    adapter_dir, merged_dir = tmp_path / "adapter", tmp_path / "merged"
    succeeded(run_script("export.py", f"run={run}", f"out={adapter_dir}", f"paths.log_dir={tmp_path}"))
    succeeded(run_script("export.py", f"run={run}", f"out={merged_dir}", "merge=true", f"paths.log_dir={tmp_path}"))
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter_dir.iterdir()}
    assert not (merged_dir / "adapter_config.json").exists() and (merged_dir / "model.safetensors").is_file()

    finished = open_run(str(run), None)
    labels = finished.summary["label_names"]
    assert len(labels) >= 3, labels
    module, _ = trained_module(finished, instantiate_data(finished.config))
    tokenizer = transformers.AutoTokenizer.from_pretrained(adapter_dir)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    sizes = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {n: i for i, n in enumerate(labels)},
    }
    card = (adapter_dir / "README.md").read_text()
    assert f"AutoPeftModelFor{auto}.from_pretrained" in card and f"num_labels={len(labels)}" in card
    reloaded = getattr(peft, f"AutoPeftModelFor{auto}").from_pretrained(adapter_dir, **sizes).eval()
    merged = getattr(transformers, f"AutoModelFor{auto}").from_pretrained(merged_dir).eval()
    assert merged.config.id2label == sizes["id2label"]
    with torch.no_grad():
        expected = module.net(**batch).logits
        assert expected.shape[-1] == len(labels)
        torch.testing.assert_close(reloaded(**batch).logits, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(expected, expected[..., :1].expand_as(expected))  # a head that says something
