"""A damaged tokenized cache is noticed, rebuilt and replaced, never loaded; an intact one is reused as is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from finetune.data.tokenized_cache import MANIFEST, load_cached, save_cached


def splits() -> DatasetDict:
    rows = {"input_ids": [[101, 7, 102], [101, 8, 9, 102]], "labels": [0, 1]}
    return DatasetDict({"train": Dataset.from_dict(rows), "validation": Dataset.from_dict(rows)})


def arrow_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.arrow"))


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: arrow_files(f)[0].write_bytes(arrow_files(f)[0].read_bytes()[:40]),  # cut short
        lambda f: arrow_files(f)[0].unlink(),  # a file gone
        lambda f: (f / MANIFEST).unlink(),  # written by an older version, or half copied
        lambda f: (f / "labels.json").write_text('{"names": ["other"]}'),  # changed
    ],
    ids=["truncated", "missing_file", "no_manifest", "changed_labels"],
)
def test_a_damaged_cache_is_rebuilt_and_replaced(tmp_path: Path, caplog, damage) -> None:
    save_cached(str(tmp_path), "key", splits(), {"names": ["neg", "pos"]})
    folder = tmp_path / "tokenized" / "key"
    damage(folder)
    assert load_cached(str(tmp_path), "key") is None
    assert f"tokenized cache {folder} is damaged" in caplog.text
    data, labels = save_cached(str(tmp_path), "key", splits(), {"names": ["neg", "pos"]})
    assert labels == {"names": ["neg", "pos"]} and data["train"]["labels"] == [0, 1]
    again = load_cached(str(tmp_path), "key")
    assert again is not None and again[0]["validation"]["input_ids"][1] == [101, 8, 9, 102]
    assert sorted(p.name for p in (tmp_path / "tokenized").iterdir()) == ["key"]  # no leftovers


def test_an_intact_cache_written_by_another_job_is_kept(tmp_path: Path) -> None:
    save_cached(str(tmp_path), "key", splits(), {"names": ["neg", "pos"]})
    manifest = json.loads((tmp_path / "tokenized" / "key" / MANIFEST).read_text())
    save_cached(str(tmp_path), "key", splits(), {"names": ["neg", "pos"]})  # the same key again: theirs stays
    assert json.loads((tmp_path / "tokenized" / "key" / MANIFEST).read_text()) == manifest
    assert load_cached(str(tmp_path), "key") is not None
