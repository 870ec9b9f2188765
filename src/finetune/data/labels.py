"""Find the label names of a dataset and turn every label into a class id, refusing labels that do not fit.

Two conventions, decided once from the training split:
- labels are class ids (a ``ClassLabel`` feature, or integers with ``data.label_names`` given): 0..k-1;
- labels are names (strings, or integers such as star ratings without ``label_names``): each distinct
  training value is a class, in sorted order, and the model's ``id2label`` maps back to it.
Float labels (STS-B's similarity scores) make a regression task: one output named after the label column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError

if TYPE_CHECKING:
    from datasets import DatasetDict


@dataclass(frozen=True)
class LabelSpace:
    """The classes of a task. ``values_are_ids``: the raw labels are already class ids. ``regression``: scores."""

    names: list[str]
    values_are_ids: bool
    regression: bool = False

    @property
    def problem_type(self) -> str:
        """The Hugging Face ``problem_type`` of the task."""
        return "regression" if self.regression else "single_label_classification"

    def encode(self, value: Any, split: str, column: str) -> int | float:
        """The class id (or score) of one raw label, or a ``UserError`` naming the label and what would fit."""
        if self.regression:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return float(value)
            raise UserError(f"label {value!r} in the {split} split ('{column}' column) is not a finite number")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # written as 1.0: the class 1
        if self.values_are_ids:
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self.names):
                return value
            raise UserError(
                f"label {value!r} in the {split} split ('{column}' column) is outside the {len(self.names)} "
                f"classes {self.names}: ids must be 0..{len(self.names) - 1}"
            )
        key = str(value)
        if key in self.names:
            return self.names.index(key)
        raise UserError(
            f"label {value!r} in the {split} split ('{column}' column) never appears in training; "
            f"known labels: {self.names}"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def infer_label_space(splits: DatasetDict, column: str, configured: list[str] | None) -> LabelSpace:
    """Decide the classes from the training split and the optional ``data.label_names``."""
    from datasets import ClassLabel

    feature = splits["train"].features[column]
    if isinstance(feature, ClassLabel):
        if configured and len(configured) != feature.num_classes:
            raise UserError(
                f"data.label_names has {len(configured)} names but the dataset has {feature.num_classes} classes "
                f"{feature.names}"
            )
        return LabelSpace([str(n) for n in (configured or feature.names)], values_are_ids=True)
    values = [v for v in splits["train"].unique(column) if v is not None]
    if not values:
        raise UserError(f"label column '{column}' of the train split is empty")
    if values and all(isinstance(v, float) and v.is_integer() for v in values):
        values = sorted({int(v) for v in values})  # 0.0/1.0 written by a spreadsheet: class ids, not scores
    if any(isinstance(v, float) for v in values) and all(isinstance(v, (int, float)) for v in values):
        if configured:
            raise UserError(f"label column '{column}' holds scores (floats): data.label_names applies to classes")
        return LabelSpace([column], values_are_ids=False, regression=True)
    if all(_is_int(v) for v in values) and configured:
        return LabelSpace([str(n) for n in configured], values_are_ids=True)
    if all(isinstance(v, str) for v in values):
        check_one_convention(values, column)
    if all(isinstance(v, str) for v in values) or all(_is_int(v) for v in values):
        names = [str(v) for v in sorted(values)]
        unknown = sorted(set(names) - set(map(str, configured or names)))
        if unknown:  # a class of data.label_names may be absent (a small set, eval.py on one class)
            raise UserError(
                f"label '{unknown[0]}' of the training data is not in data.label_names {list(configured)} (eval.py, "
                "predict.py: the run's labels); add it there, or fix the rows that carry it"
            )
        return LabelSpace([str(n) for n in configured] if configured else names, values_are_ids=False)
    example = next(v for v in values if not (isinstance(v, str) or _is_int(v)))
    raise UserError(
        f"label column '{column}' holds {type(example).__name__} values such as {example!r}: "
        "classification needs string names or integer class ids"
    )


def check_no_missing(values: list[Any], split: str, column: str) -> None:
    """Every row has a label: an empty cell is a ``UserError`` naming its row, not a class called ``None``
    (nor, as NaN in a column of numbers, a reason to turn classes into scores)."""
    for row, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            raise UserError(
                f"row {row + 1} of the {split} split has no label in the '{column}' column (an empty cell); "
                "fill it in or drop the row"
            )


def check_one_convention(values: list[str], column: str) -> None:
    """Labels are all class ids or all names, not both (``1`` and ``positive`` would be two classes)."""
    numbers = sorted(v for v in values if v.strip().lstrip("-").isdigit())
    names = sorted(v for v in values if v not in numbers)
    if numbers and names:
        raise UserError(
            f"label column '{column}' mixes numbers {numbers[:3]} and names {names[:3]}: write every label "
            "one way (all names, or all class ids with data.label_names)"
        )


def encode_labels(splits: DatasetDict, column: str, space: LabelSpace) -> DatasetDict:
    """Replace ``column`` by an integer ``labels`` column, checking every value of every split."""

    def encode(batch: dict[str, list], split: str) -> dict[str, list[int]]:
        return {"labels": [space.encode(v, split, column) for v in batch[column]]}

    return type(splits)(
        {
            split: data.map(encode, batched=True, fn_kwargs={"split": split}, remove_columns=[column])
            for split, data in splits.items()
        }
    )


def check_num_labels(expected: int | None, names: list[str]) -> None:
    """The data's classes number ``data.num_labels`` (None: no check)."""
    if expected is not None and expected != len(names):
        raise UserError(f"data.num_labels={expected} but the data has {len(names)} classes {names}")
