"""Each task metric against an independent computation on fixed predictions (plain Python formulas)."""

from __future__ import annotations

import math

import pytest
import torch

from finetune.errors import UserError
from finetune.models.objectives import objective_for

PREDS = [0, 1, 1, 0, 1, 2, 2, 0, 1, 1, 0, 2]
LABELS = [0, 1, 0, 0, 1, 2, 1, 2, 1, 0, 0, 2]
SCORES = [0.1, 2.5, 3.3, 4.0, 1.2, 2.5, 0.0, 4.8]
TARGETS = [0.0, 2.0, 3.8, 3.1, 1.5, 2.2, 0.4, 5.0]


def f1(preds: list[int], labels: list[int], cls: int) -> float:
    tp = sum(p == cls and y == cls for p, y in zip(preds, labels, strict=True))
    fp = sum(p == cls and y != cls for p, y in zip(preds, labels, strict=True))
    fn = sum(p != cls and y == cls for p, y in zip(preds, labels, strict=True))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def mcc(preds: list[int], labels: list[int], k: int) -> float:
    """Multiclass Matthews correlation (Gorodkin's R_K) from the confusion matrix."""
    c = [[sum(y == i and p == j for p, y in zip(preds, labels, strict=True)) for j in range(k)] for i in range(k)]
    s = len(preds)
    correct = sum(c[i][i] for i in range(k))
    t = [sum(c[i]) for i in range(k)]  # true counts
    p = [sum(c[i][j] for i in range(k)) for j in range(k)]  # predicted counts
    num = correct * s - sum(t[i] * p[i] for i in range(k))
    den = math.sqrt(s * s - sum(x * x for x in p)) * math.sqrt(s * s - sum(x * x for x in t))
    return num / den


def pearson(x: list[float], y: list[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for m in range(i, j + 1):
            result[order[m]] = (i + j) / 2 + 1
        i = j + 1
    return result


def computed(objective, preds, labels) -> dict[str, float]:
    metrics = objective.metrics("val/")
    metrics.update(torch.tensor(preds), torch.tensor(labels))
    return {k: float(v) for k, v in metrics.compute().items()}


def test_classification_metrics() -> None:
    objective = objective_for("single_label_classification", 3, "auto", 0.0, ["acc", "f1", "mcc"], "mcc")
    got = computed(objective, PREDS, LABELS)
    assert got["val/acc"] == pytest.approx(sum(p == y for p, y in zip(PREDS, LABELS, strict=True)) / len(PREDS))
    assert got["val/f1"] == pytest.approx(sum(f1(PREDS, LABELS, c) for c in range(3)) / 3)
    assert got["val/mcc"] == pytest.approx(mcc(PREDS, LABELS, 3))
    assert objective.main_metric == "mcc"


def test_binary_f1_is_the_positive_class_f1() -> None:
    preds = [1 if p else 0 for p in PREDS]
    labels = [1 if y else 0 for y in LABELS]
    objective = objective_for("single_label_classification", 2, "auto", 0.0, ["f1_pos", "acc", "mcc"])
    got = computed(objective, preds, labels)
    assert got["val/f1_pos"] == pytest.approx(f1(preds, labels, 1))
    assert got["val/mcc"] == pytest.approx(mcc(preds, labels, 2))


def test_regression_metrics() -> None:
    objective = objective_for("regression", 1, "auto", 0.0)
    metrics = objective.metrics("test/")
    metrics.update(torch.tensor(SCORES), torch.tensor(TARGETS))
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got["test/pearson"] == pytest.approx(pearson(SCORES, TARGETS), rel=1e-5)
    assert got["test/spearman"] == pytest.approx(pearson(ranks(SCORES), ranks(TARGETS)), rel=1e-5)
    mse = sum((a - b) ** 2 for a, b in zip(SCORES, TARGETS, strict=True)) / len(SCORES)
    assert got["test/mse"] == pytest.approx(mse, rel=1e-6)
    assert objective.main_metric == "pearson"


def test_metric_choices_are_checked() -> None:
    with pytest.raises(UserError, match=r"data.metrics \['mcc'\] do not apply to scores"):
        objective_for("regression", 1, "auto", 0.0, ["pearson", "mcc"])
    with pytest.raises(UserError, match=r"data.main_metric 'f1' is not one of"):
        objective_for("single_label_classification", 2, "auto", 0.0, ["acc"], "f1")
    with pytest.raises(UserError, match="metric f1_pos needs 2 classes"):
        objective_for("single_label_classification", 3, "auto", 0.0, ["f1_pos"])
