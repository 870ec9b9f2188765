"""Every task the project ships, through the real commands: a few training steps on a tiny model, then eval.py,
predict.py and export.py, each ending in success or in one line and exit status 2, never a traceback, and
never touching the run. Adding a task to ``TASKS`` is how a new task gets these after-training checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from tests.helpers.commands import error_line, run_script, succeeded, tree_state

pytestmark = pytest.mark.slow
QUICK = ["trainer.max_epochs=1", "trainer.precision=32", "logger=csv", "trainer.enable_model_summary=false"]
QUICK += ["callbacks.progress_bar.refresh_rate=0", "data.max_train_samples=64", "data.max_eval_samples=32"]
TEXTS = "great value, works as described\nbroke within a week\n"


def text_rows(folder: Path) -> Path:
    path = folder / "rows.txt"
    path.write_text(TEXTS)
    return path


def pair_rows(folder: Path) -> Path:
    path = folder / "pairs.csv"
    path.write_text("sentence1,sentence2\nA man plays a guitar.,A man is playing music.\nIt rains.,The sun shines.\n")
    return path


def number_rows(folder: Path) -> Path:
    path = folder / "rows.csv"
    path.write_text("x\n0.5\n-1.0\n")
    return path


def image_rows(folder: Path) -> Path:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    lines = ["image"]
    for n, array in enumerate(load_digits().images[:3]):
        Image.fromarray((array * 255 / 16).round().astype(np.uint8), mode="L").save(folder / f"{n}.png")
        lines.append(f"{folder / f'{n}.png'}")
    path = folder / "rows.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Task:
    """A shipped task: how to train it briefly, a predict input, and what eval/predict/export must do (None:
    succeed; a string: refuse in one line containing it)."""

    train: list[str]
    rows: Callable[[Path], Path]
    eval_metric: str
    refuses: dict[str, str] = field(default_factory=dict)


TASKS = {
    "sequence_classification": Task(["model=tiny_random", *QUICK], text_rows, "test/acc"),
    "regression": Task(
        ["model=tiny_random", "data=stsb", f"data.data_dir={SHARED_DATA / 'glue' / 'STS-B'}", *QUICK],
        pair_rows,
        "test/pearson",
    ),
    "token_classification": Task(["experiment=ner", "model=tiny_random", *QUICK], text_rows, "test/f1"),
    "linear_regression": Task(
        ["experiment=linear_regression", "trainer.max_epochs=3"],
        number_rows,
        "test/loss",
        {"predict": "does not predict rows of a file", "export": "has no Hugging Face form"},
    ),
    "image_classification": Task(["experiment=digits", *QUICK], image_rows, "test/acc"),
}


def outcome(result, refusal: str | None) -> None:
    if refusal is None:
        succeeded(result)
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
    else:
        assert refusal in error_line(result)


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_trains_then_evaluates_predicts_and_exports(name: str, tmp_path: Path) -> None:
    task, run = TASKS[name], tmp_path / "run"
    succeeded(run_script("train.py", *task.train, f"paths.log_dir={tmp_path}", f"hydra.run.dir={run}"))
    recorded = json.loads((run / "metrics.json").read_text())["metrics"]
    before = tree_state(run)

    result = run_script("eval.py", f"run={run}", f"hydra.run.dir={tmp_path / 'eval'}")
    outcome(result, task.refuses.get("eval"))
    if "eval" not in task.refuses:
        tested = json.loads((tmp_path / "eval" / "eval.json").read_text())["metrics"]
        assert tested[task.eval_metric] == pytest.approx(recorded[task.eval_metric], abs=1e-5)

    rows = task.rows(tmp_path)
    result = run_script("predict.py", f"run={run}", f"input={rows}", f"hydra.run.dir={tmp_path / 'predict'}")
    outcome(result, task.refuses.get("predict"))
    if "predict" not in task.refuses:
        lines = (tmp_path / "predict" / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == len(rows.read_text().splitlines()) - (rows.suffix == ".csv")
        assert all("error" not in json.loads(line) for line in lines)

    result = run_script("export.py", f"run={run}", f"out={tmp_path / 'hf'}", f"hydra.run.dir={tmp_path / 'export'}")
    outcome(result, task.refuses.get("export"))
    if "export" not in task.refuses:
        assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in (tmp_path / "hf").iterdir()}
    assert tree_state(run) == before  # none of the three changed the run
