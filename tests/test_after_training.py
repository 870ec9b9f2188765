"""eval.py, predict.py, export.py and train.py rerun= through the real command line: what they write, and the
mistakes they refuse (one line, exit 2) without touching the run they were pointed at."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers.commands import error_line, finished_run, run_script, succeeded, tree_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the tiny model on the demo reviews."""
    return finished_run(tmp_path_factory.mktemp("finished"))


def demo_csv(path: Path, labels: list[str] | None = None, rows: int = 30) -> Path:
    import csv

    texts = [json.loads(line) for line in (ROOT / "src/finetune/data/demo/test.jsonl").read_text().splitlines()]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        for i, row in enumerate(texts[:rows]):
            writer.writerow({"text": row["text"], "label": labels[i % len(labels)] if labels else row["label"]})
    return path


def test_run_records_what_produced_it(run: Path) -> None:
    record = json.loads((run / "provenance.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert record["git"]["commit"] == head.stdout.strip()
        tracked_changes = subprocess.run(["git", "diff", "HEAD", "--quiet"], cwd=ROOT).returncode == 1
        assert (run / "git.diff").is_file() == tracked_changes  # the diff is kept exactly when there is one
        assert record["git"]["dirty"] == (tracked_changes or bool(record["git"]["untracked"]))
    assert {"torch", "lightning", "transformers", "datasets", "hydra-core", "torchmetrics", "finetune"} <= set(
        record["packages"]
    )
    assert record["command"][1:3] == [str(ROOT / "train.py"), "model=tiny_random"]
    assert record["hardware"]["cpu_count"] >= 1 and record["hardware"]["gpu_count"] == 0
    assert set(record["data"]["files"]) == {"train", "validation", "test"}
    assert record["data"]["split_sizes"] == {"train": 504, "validation": 108, "test": 108}
    assert record["seeds"] == {"seed": 42, "data.seed": 42}
    script = (run / "rerun.sh").read_text()
    assert f"rerun={run}" in script and (run / "rerun.sh").stat().st_mode & 0o111


def test_eval_tests_the_run_again_without_touching_it(run: Path, tmp_path: Path) -> None:
    before = tree_state(run)
    result = succeeded(run_script("eval.py", f"run={run}", f"hydra.run.dir={tmp_path / 'eval'}"))
    assert tree_state(run) == before
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    recorded = json.loads((run / "metrics.json").read_text())["metrics"]
    assert report["checkpoint"] == json.loads((run / "metrics.json").read_text())["best_checkpoint"]
    assert set(report["metrics"]) == {"test/acc", "test/f1", "test/loss"}
    for name, value in report["metrics"].items():
        assert value == pytest.approx(recorded[name], abs=1e-6)
    table = (tmp_path / "eval" / "metrics.md").read_text()
    assert f"| test/acc | {report['metrics']['test/acc']:.4f} | {recorded['test/acc']:.4f} |" in table
    assert "| metric | this eval | the run's test |" in result.stdout
    assert not (tmp_path / "eval" / "rerun.sh").exists()


def test_eval_of_a_named_checkpoint_of_an_unfinished_run(run: Path, tmp_path: Path) -> None:
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    summary = json.loads((unfinished / "metrics.json").read_text())
    (unfinished / "metrics.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    last = unfinished / "checkpoints" / "last.ckpt"
    succeeded(run_script("eval.py", f"ckpt_path={last}", f"hydra.run.dir={tmp_path / 'eval'}"))
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["checkpoint"] == str(last) and report["run"] == str(unfinished)
    assert set(report["metrics"]) == {"test/acc", "test/f1", "test/loss"}


def test_eval_on_other_data_checks_the_labels(run: Path, tmp_path: Path) -> None:
    other = demo_csv(tmp_path / "other.csv")
    positives = demo_csv(tmp_path / "positive.csv", labels=["positive"])
    for name, data in (("other", other), ("positive", positives)):
        succeeded(run_script("eval.py", f"run={run}", "data=csv", f"data.test_file={data}",
                             f"hydra.run.dir={tmp_path / name}"))  # fmt: skip
        report = json.loads((tmp_path / name / "eval.json").read_text())
        assert report["data"]["test_file"] == str(data) and 0.0 <= report["metrics"]["test/acc"] <= 1.0
    labelled = demo_csv(tmp_path / "three.csv", labels=["positive", "negative", "neutral"])
    line = error_line(run_script("eval.py", f"run={run}", "data=csv", f"data.test_file={labelled}",
                                 f"hydra.run.dir={tmp_path / 'three'}"))  # fmt: skip
    assert "label 'neutral'" in line and "['negative', 'positive']" in line
    line = error_line(run_script("eval.py", f"run={run}", "model=minilm", f"hydra.run.dir={tmp_path / 'model'}"))
    assert "takes the model" in line
    line = error_line(run_script("eval.py", f"run={run}", "data=wnut16", f"hydra.run.dir={tmp_path / 'tags'}"))
    assert "TokenClassifier" in line and "SequenceClassifier" in line


@pytest.mark.parametrize("case", ["no_checkpoint", "unfinished", "not_a_run"])
@pytest.mark.parametrize("script", ["eval.py", "predict.py", "export.py"])
def test_commands_refuse_a_run_they_cannot_use(run: Path, tmp_path: Path, script: str, case: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    if case == "no_checkpoint":
        shutil.rmtree(broken / "checkpoints")
    elif case == "unfinished":
        summary = json.loads((broken / "metrics.json").read_text())
        (broken / "metrics.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    else:
        shutil.rmtree(broken / ".hydra")
    before = tree_state(broken)
    extra = [f"input={tmp_path / 'rows.txt'}"] if script == "predict.py" else []
    (tmp_path / "rows.txt").write_text("a review\n")
    line = error_line(run_script(script, f"run={broken}", *extra, f"hydra.run.dir={tmp_path / 'command'}"))
    expected = {"no_checkpoint": "has no checkpoint", "unfinished": "is interrupted, not completed",
                "not_a_run": "holds no .hydra/config.yaml"}[case]  # fmt: skip
    assert expected in line
    assert tree_state(broken) == before


def test_predict_files_and_their_mistakes(run: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text('id,text\nr1,"a lovely, quiet hotel"\nr2,\nr3,the food was cold\n')
    output = tmp_path / "out.jsonl"
    result = succeeded(run_script("predict.py", f"run={run}", f"input={rows}", f"output={output}",
                                  f"hydra.run.dir={tmp_path / 'p1'}"))  # fmt: skip
    predicted = [json.loads(line) for line in output.read_text().splitlines()]
    assert [p["id"] for p in predicted] == ["r1", "r2", "r3"]
    assert predicted[0]["text"] == "a lovely, quiet hotel" and predicted[0]["label"] in ("negative", "positive")
    assert sum(predicted[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert predicted[1]["error"] == "empty text in 'text'" and "label" not in predicted[1]
    assert "1 row(s) could not be predicted: rows 1" in result.stdout + result.stderr
    summary = json.loads((tmp_path / "p1" / "predict.json").read_text())
    assert (summary["rows"], summary["predicted"], summary["failed"]) == (
        3,
        2,
        [{"row": 1, "error": "empty text in 'text'"}],
    )

    line = error_line(run_script("predict.py", f"run={run}", f"input={rows}", f"output={output}",
                                 f"hydra.run.dir={tmp_path / 'p2'}"))  # fmt: skip
    assert "already exists" in line and len(output.read_text().splitlines()) == 3
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("review\nnice\n")
    line = error_line(run_script("predict.py", f"run={run}", f"input={reviews}", f"hydra.run.dir={tmp_path / 'p3'}"))
    assert "no column 'text'" in line and "['review']" in line and "text_column=" in line
    line = error_line(run_script("predict.py", f"run={run}", f"hydra.run.dir={tmp_path / 'p5'}"))
    assert line == "error: input is not set: give it on the command line (input=...)"
    succeeded(run_script("predict.py", f"run={run}", f"input={reviews}", "text_column=review",
                         f"hydra.run.dir={tmp_path / 'p4'}"))  # fmt: skip
    assert json.loads((tmp_path / "p4" / "predictions.jsonl").read_text())["review"] == "nice"


def test_predict_reads_stdin(run: Path, tmp_path: Path) -> None:
    import os
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(ROOT / "predict.py"), f"run={run}", "input=-", f"hydra.run.dir={tmp_path / 'p'}"]
    result = subprocess.run(command, input="great value\nbroke in a week\n", capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "p" / "predictions.jsonl").read_text().splitlines()]
    assert [(line["id"], line["text"]) for line in lines] == [(0, "great value"), (1, "broke in a week")]


def test_export_refuses_an_existing_folder_and_a_task_without_hf_form(run: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    line = error_line(
        run_script("export.py", f"run={run}", f"out={tmp_path / 'taken'}", f"hydra.run.dir={tmp_path / 'e'}")
    )
    assert "already exists" in line and (tmp_path / "taken" / "mine.txt").read_text() == "keep"


def test_a_task_without_text_evaluates_and_refuses_predict_and_export_in_one_line(tmp_path: Path) -> None:
    linear = tmp_path / "linear"
    succeeded(run_script("train.py", "experiment=linear_regression", "trainer.max_epochs=3",
                         f"paths.log_dir={tmp_path}", f"hydra.run.dir={linear}"))  # fmt: skip
    before = tree_state(linear)
    succeeded(run_script("eval.py", f"run={linear}", f"hydra.run.dir={tmp_path / 'ev'}"))
    tested = json.loads((tmp_path / "ev" / "eval.json").read_text())["metrics"]
    recorded = json.loads((linear / "metrics.json").read_text())["metrics"]
    assert tested["test/loss"] == pytest.approx(recorded["test/loss"], rel=1e-6)
    line = error_line(run_script("eval.py", f"run={linear}", "data.tokenizer=x", f"hydra.run.dir={tmp_path / 'e0'}"))
    assert "data.tokenizer" in line  # not a setting of this data: Hydra's one line, not a traceback
    rows = tmp_path / "rows.csv"
    rows.write_text("x\n0.5\n")
    line = error_line(run_script("predict.py", f"run={linear}", f"input={rows}", f"hydra.run.dir={tmp_path / 'p'}"))
    assert "LinearRegression with LinearRegressionDataModule does not predict" in line
    line = error_line(run_script("export.py", f"run={linear}", f"hydra.run.dir={tmp_path / 'e2'}"))
    assert "LinearRegression has no Hugging Face form" in line
    assert tree_state(linear) == before


def test_rerun_repeats_the_config_and_compares(run: Path, tmp_path: Path) -> None:
    before = tree_state(run)
    result = succeeded(run_script("train.py", f"rerun={run}", f"hydra.run.dir={tmp_path / 'again'}"))
    assert tree_state(run) == before
    assert f"rerun of {run}" in result.stdout
    comparison = json.loads((tmp_path / "again" / "rerun.json").read_text())
    assert comparison["original"] == str(run)
    for name in ("test/acc", "test/loss", "val/loss"):  # same seed, fp32 on the CPU: the same numbers
        assert comparison["metrics"][name]["difference"] == pytest.approx(0.0, abs=1e-5), name
    saved = (tmp_path / "again" / ".hydra" / "config.yaml").read_text()
    assert "max_epochs: 1" in saved and f"rerun: {run}" in saved  # the config actually run, not the command's
    line = error_line(run_script("train.py", f"rerun={run}", "optimizer=sgd", f"hydra.run.dir={tmp_path / 'x'}"))
    assert "optimizer=sgd cannot apply" in line
