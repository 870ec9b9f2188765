"""The export round trip for every task, through the real commands: train a run, ``export.py`` it, and
``transformers.pipeline(<task>, model=<export>)`` on the run's test rows reproduces the run's test metrics (CPU
fp32, to 1e-4); ``predict.py`` on the same rows gives the pipeline's predictions. Real MiniLM runs on real data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import SHARED_DATA
from tests.helpers.commands import run_script, succeeded

# One worker for the whole file: each task's run is trained once, not once per worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("roundtrip")]
COMMON = ["trainer.precision=32", "logger=csv", "callbacks.progress_bar.refresh_rate=0"]
COMMON += ["trainer.enable_model_summary=false"]
TASKS = {
    "classification": ["trainer.max_epochs=1"],
    "regression": [
        *("data=stsb", f"data.data_dir={SHARED_DATA}/glue/STS-B", "data.max_train_samples=512"),
        *("data.max_eval_samples=128", "trainer.max_epochs=2"),
    ],
    "ner": ["experiment=ner", "data.max_train_samples=600", "data.max_eval_samples=80", "trainer.max_epochs=2"],
}


@pytest.fixture(scope="module", params=sorted(TASKS))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished run of the task, its export, and its test rows as the run read them."""
    from finetune.use.finished import instantiate_data, open_run

    base = tmp_path_factory.mktemp(request.param)
    run = base / "run"
    succeeded(run_script("train.py", *COMMON, *TASKS[request.param], f"paths.log_dir={base}", f"hydra.run.dir={run}"))
    succeeded(run_script("export.py", f"run={run}", f"out={base / 'model'}", f"hydra.run.dir={base / 'export'}"))
    finished = open_run(str(run), None)
    datamodule = instantiate_data(finished.config)
    splits = datamodule.tagged_splits()[0] if request.param == "ner" else datamodule.labelled_splits()[0]
    test = {column: list(splits["test"][column]) for column in splits["test"].column_names}  # plain lists
    return {"task": request.param, "run": run, "model": base / "model", "finished": finished, "test": test}


def pipe(model: Path, task: str) -> Any:
    from transformers import pipeline

    return pipeline("token-classification" if task == "ner" else "text-classification", model=str(model), device="cpu")


def classification_metrics(scores: list[dict[str, float]], labels: list[int], names: list[str]) -> dict[str, float]:
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

    probabilities = torch.tensor([[row[name] for name in names] for row in scores])
    target = torch.tensor(labels)
    predicted = probabilities.argmax(-1)
    n = len(names)
    return {
        "test/acc": float(multiclass_accuracy(predicted, target, n, average="micro")),
        "test/f1": float(multiclass_f1_score(predicted, target, n, average="macro")),
        "test/loss": float(-probabilities[torch.arange(len(labels)), target].log().mean()),
    }


def regression_metrics(predicted: list[float], labels: list[float]) -> dict[str, float]:
    from torchmetrics.functional import mean_squared_error, pearson_corrcoef, spearman_corrcoef

    p, t = torch.tensor(predicted), torch.tensor(labels, dtype=torch.float32)
    mse = float(mean_squared_error(p, t))
    return {"test/pearson": float(pearson_corrcoef(p, t)), "test/spearman": float(spearman_corrcoef(p, t)),
            "test/mse": mse, "test/loss": mse}  # fmt: skip


def word_tags(pipeline: Any, words: list[str]) -> list[str | None]:
    """Each word's tag from the pipeline's per-token output: its first sub-token's (None: no token, truncated)."""
    tokens = pipeline(words, is_split_into_words=True, aggregation_strategy="none", ignore_labels=[])
    tokens = tokens[0] if tokens and isinstance(tokens[0], list) else tokens  # one sentence, returned as a batch
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    by_start: dict[int, str] = {}
    for token in sorted(tokens, key=lambda t: t["index"]):
        by_start.setdefault(token["start"], token["entity"])
    return [by_start.get(start) for start in starts]


def test_pipeline_reproduces_the_test_metrics(exported: dict[str, Any], tmp_path: Path) -> None:
    task, test, finished = exported["task"], exported["test"], exported["finished"]
    recorded = finished.test_metrics
    pipeline = pipe(exported["model"], task)
    if task == "classification":
        names = finished.summary["label_names"]
        out = pipeline(test["text"], top_k=None, truncation=True, batch_size=16)
        got = classification_metrics([{r["label"]: r["score"] for r in row} for row in out], test["labels"], names)
    elif task == "regression":
        texts = [{"text": a, "text_pair": b} for a, b in zip(test["sentence1"], test["sentence2"], strict=True)]
        out = pipeline(texts, function_to_apply="none", truncation=True, batch_size=16)
        got = regression_metrics([row["score"] for row in out], test["labels"])
    else:
        got = entity_metrics(pipeline, test["tokens"], test["tags"])
    assert set(got) <= set(recorded)
    for name, value in got.items():
        assert value == pytest.approx(recorded[name], abs=1e-4), (name, value, recorded[name])
    if task != "regression":  # the run learned something: the comparison is not between two constants
        assert recorded["test/acc" if task == "classification" else "test/token_acc"] > 0.5


def entity_metrics(pipeline: Any, sentences: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    from seqeval.metrics import classification_report

    predicted, kept_gold, right, total = [], [], 0, 0
    for words, tags in zip(sentences, gold, strict=True):
        pairs = [(p, g) for p, g in zip(word_tags(pipeline, words), tags, strict=True) if p is not None]
        predicted.append([p for p, _ in pairs])
        kept_gold.append([g for _, g in pairs])
        right, total = right + sum(p == g for p, g in pairs), total + len(pairs)
    report = classification_report(kept_gold, predicted, output_dict=True, zero_division=0)["micro avg"]
    return {"test/precision": report["precision"], "test/recall": report["recall"], "test/f1": report["f1-score"],
            "test/token_acc": right / total}  # fmt: skip


def test_predict_gives_the_pipelines_predictions(exported: dict[str, Any], tmp_path: Path) -> None:
    task, test = exported["task"], exported["test"]
    columns = {"classification": ["text"], "regression": ["sentence1", "sentence2"], "ner": ["tokens"]}[task]
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*(test[c] for c in columns), strict=True)]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "predicted.jsonl"
    succeeded(run_script("predict.py", f"run={exported['run']}", f"input={source}", f"output={output}",
                         "trainer.precision=32", "batch_size=7", f"hydra.run.dir={tmp_path / 'predict'}"))  # fmt: skip
    predicted = [json.loads(line) for line in output.read_text().splitlines()]
    assert [p["id"] for p in predicted] == list(range(len(rows)))  # input order, every row once
    assert all(p[c] == row[c] for p, row in zip(predicted, rows, strict=True) for c in columns)
    pipeline = pipe(exported["model"], task)
    if task == "classification":
        out = pipeline([r["text"] for r in rows], top_k=None, truncation=True, batch_size=16)
        for mine, theirs in zip(predicted, out, strict=True):
            assert mine["label"] == theirs[0]["label"]
            for label in theirs:
                assert mine["probabilities"][label["label"]] == pytest.approx(label["score"], abs=1e-5)
    elif task == "regression":
        pairs = [{"text": r["sentence1"], "text_pair": r["sentence2"]} for r in rows]
        out = pipeline(pairs, function_to_apply="none", truncation=True, batch_size=16)
        assert [p["score"] for p in predicted] == pytest.approx([o["score"] for o in out], abs=1e-5)
    else:
        for mine, row in zip(predicted, rows, strict=True):
            tags = word_tags(pipeline, row["tokens"])
            assert mine["tags"] == [tag or "O" for tag in tags[: len(mine["tags"])]]
            assert all(tag is None for tag in tags[len(mine["tags"]) :])  # only words past max_length untagged
            for entity in mine["entities"]:
                text = " ".join(row["tokens"])
                assert text[entity["start"] : entity["end"]] == entity["text"]


def test_export_folder_and_model_card(exported: dict[str, Any]) -> None:
    model, finished = exported["model"], exported["finished"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "finetune_run.json"} <= {
        p.name for p in model.iterdir()
    }
    assert not list(model.parent.glob(".model.*"))  # the temporary folder was renamed, none left over
    config = json.loads((model / "config.json").read_text())
    card = (model / "README.md").read_text()
    provenance = json.loads((exported["run"] / "provenance.json").read_text())
    if exported["task"] != "regression":
        assert list(config["id2label"].values()) == finished.summary["label_names"]
        assert config["label2id"] == {name: i for i, name in enumerate(finished.summary["label_names"])}
    assert json.loads((model / "tokenizer_config.json").read_text())["model_max_length"] == 128
    for name, value in finished.test_metrics.items():
        assert f"| {name} | {value:.4f} |" in card
    assert provenance["base_model"]["sha256"] in card  # the packaged MiniLM's published hash
    assert provenance["git"]["commit"] in card
    assert all(f["sha256"] in card for f in provenance["data"]["files"].values())
    assert "## Intended use and limits" in card and "pipeline(" in card
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: ")
    assert not math.isnan(sum(finished.test_metrics.values()))
