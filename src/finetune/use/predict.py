"""``python predict.py run=<run dir> input=<file>``: one JSON line per input row, in input order.

The rows are tokenized as the run's data was (the task's ``prediction_features``), batched by length (little
padding), run through Lightning's predict loop (the precision ``auto`` picks, a progress bar, any strategy), and
each process writes the rows of its own batches; rank 0 merges them by row number, so under DDP every row is
predicted once. Rows that cannot be predicted (an empty text) stay in the output with an ``error`` and are
listed in the log and in ``predict.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from finetune import atomic
from finetune.errors import UserError
from finetune.trainer.compat import ctrl_c_as_keyboard_interrupt
from finetune.use.finished import instantiate_data, open_run, trained_module
from finetune.use.inputs import claimed_output, read_rows, row_id
from finetune.use.settings import check_command_settings

log = logging.getLogger(__name__)
SHARD = "rows.rank{rank}.jsonl"


def length_batches(features: list[dict[str, Any]], batch_size: int, rank: int, world: int) -> list[list[int]]:
    """Positions of the predictable features, longest first, in batches; this process's share of the batches."""
    # Texts of similar length together pad little; inputs without tokens (images) keep their order.
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["inputs"].get("input_ids", ())))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return batches[rank::world]


class FixedBatches:
    """A batch sampler over batches decided in advance (Lightning's predict loop wraps it to track indices)."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class RowWriter(Callback):
    """Writes each predicted batch's rows as JSON lines into this process's shard; rank 0 merges the shards.

    Args:
        folder: where the shards are written.
        extras: each predictable row's ``extra`` (what ``prediction_record`` needs), by row number.
    """

    def __init__(self, folder: Path, extras: dict[int, dict[str, Any]]) -> None:
        self.folder, self.extras, self.handle = folder, extras, None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.handle = (self.folder / SHARD.format(rank=trainer.global_rank)).open("w", encoding="utf-8")

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        rows, outputs = outputs
        for row, output in zip(rows, outputs, strict=True):
            record = pl_module.prediction_record(output, self.extras[row])
            self.handle.write(json.dumps({"row": row, **record}) + "\n")

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.handle.close()
        trainer.strategy.barrier()  # every shard complete before rank 0 reads them


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Predict ``cfg.input`` with the run's model into ``cfg.output`` (default ``<this dir>/predictions.jsonl``);
    write and return the summary (``predict.json``). The output's name is held from the check to the write
    (``claimed_output``): two commands never write one file."""
    from finetune.trainer.distributed import is_rank_zero

    started = time.perf_counter()
    check_command_settings(cfg, "predict")
    finished = open_run(cfg.get("run"), cfg.get("ckpt_path"), bool(cfg.get("trust_run")))
    check_predicts(finished.config)
    here = Path(cfg.paths.output_dir)
    output = Path(str(cfg.output)).expanduser() if cfg.get("output") else here / "predictions.jsonl"
    if not is_rank_zero():  # DDP's other ranks predict their share; rank 0 writes the output
        return _predict(cfg, finished, output.resolve(), started)
    with claimed_output(output, here) as claimed:
        return _predict(cfg, finished, claimed, started)


def _predict(cfg: DictConfig, finished: Any, output: Path, started: float) -> dict[str, Any]:
    from finetune.trainer.distributed import use_job_command_for_ddp_children

    here = Path(cfg.paths.output_dir)
    datamodule = instantiate_data(finished.config)
    rows = read_rows(str(cfg.input), cfg.get("input_format"), cfg.get("text_column") or default_column(datamodule))
    features = datamodule.prediction_features(rows, cfg.get("text_column"))
    module, _ = trained_module(finished, datamodule)  # every check passed: now the weights
    predictable = [i for i, feature in enumerate(features) if "inputs" in feature]
    use_job_command_for_ddp_children(str(here), str(finished.checkpoint), resumes=False)
    trainer = predict_trainer(cfg, RowWriter(here / "shards", {i: features[i]["extra"] for i in predictable}))
    loader = prediction_loader(datamodule, features, predictable, int(cfg.batch_size), trainer)
    with warnings.catch_warnings():  # FixedBatches holds every row: Lightning's drop_last caution does not apply
        warnings.filterwarnings("ignore", message="You are using a custom batch sampler")
        with ctrl_c_as_keyboard_interrupt(trainer):  # Ctrl-C: exit 130 and no output, as every command
            trainer.predict(module, dataloaders=loader, return_predictions=False)
    if not trainer.is_global_zero:
        return {}
    failed = [{"row": i, "error": features[i]["error"]} for i in range(len(rows)) if "error" in features[i]]
    write_output(output, rows, merged_records(here / "shards"), failed, cfg.get("id_column") or "id")
    shutil.rmtree(here / "shards", ignore_errors=True)
    summary = {
        "run": str(finished.run_dir), "checkpoint": str(finished.checkpoint), "input": str(cfg.input),
        "output": str(output), "rows": len(rows), "predicted": len(predictable), "failed": failed,
        "precision": str(trainer.precision), "devices": trainer.world_size,
        "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip
    atomic.write_json(here / "predict.json", summary)
    if failed:
        log.warning("%d row(s) could not be predicted: %s", len(failed), _row_list(failed))
    log.info("%d rows predicted into %s (%.1f s)", len(predictable), output, summary["seconds"])
    return summary


def check_predicts(config: DictConfig) -> None:
    """The run's task implements prediction (module and data), else one line."""
    from hydra.utils import get_class

    module_class, data_class = get_class(config.model._target_), get_class(config.data._target_)
    if not module_class.predicts() or not getattr(data_class, "predicts", lambda: False)():
        raise UserError(
            f"{module_class.__name__} with {data_class.__name__} does not predict rows of a file; predict.py takes a "
            "run of a task that does (sequence or token classification); eval.py tests this run on data"
        )


def default_column(datamodule: Any) -> str:
    """The column a txt line fills: the run's input column (``TaskDataModule.prediction_column``)."""
    return datamodule.prediction_column


def predict_trainer(cfg: DictConfig, writer: RowWriter) -> pl.Trainer:
    """The trainer of ``cfg.trainer`` for predicting: its devices, strategy and precision, no logger or checkpoints."""
    from hydra.utils import instantiate

    from finetune.trainer.precision import resolve_precision

    precision = resolve_precision(cfg.trainer.get("precision", "32"))
    return instantiate(cfg.trainer, precision=precision, callbacks=[writer], logger=False, enable_checkpointing=False)


def prediction_loader(datamodule: Any, features: list[dict], predictable: list[int], batch_size: int, trainer: Any):
    """Length-grouped batches of the predictable rows, this process's share, each batch carrying its row numbers."""
    import torch
    from torch.utils.data import DataLoader

    pad = datamodule.predict_collator()
    rows = [{"row": i, "inputs": features[i]["inputs"]} for i in predictable]

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = dict(pad([item["inputs"] for item in items]))
        batch["row"] = torch.tensor([item["row"] for item in items])
        return batch

    batches = length_batches(rows, batch_size, trainer.global_rank, trainer.world_size)
    return DataLoader(rows, batch_sampler=FixedBatches(batches), collate_fn=collate)


def merged_records(folder: Path) -> dict[int, dict[str, Any]]:
    """Every process's rows by row number (a row predicted twice would keep one copy)."""
    records = {}
    for shard in sorted(folder.glob(SHARD.format(rank="*"))):
        for line in shard.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            records[record.pop("row")] = record
    return records


def write_output(output: Path, rows: list[dict], records: dict[int, dict], failed: list[dict], id_column: str) -> None:
    """The input rows in order, each with its id, its fields and its prediction (or its error); atomically. An
    output name the input already has (a gold ``label`` column) is written as ``predicted_<name>``: input fields
    are never replaced."""
    errors = {item["row"]: item["error"] for item in failed}
    with atomic.atomic_open(output) as handle:
        for number, row in enumerate(rows):
            prediction = records.get(number) or {"error": errors.get(number, "not predicted")}
            fields = {k: v for k, v in row.items() if k != id_column}
            named = {(f"predicted_{k}" if k in fields else k): v for k, v in prediction.items()}
            handle.write(json.dumps({"id": row_id(row, number, id_column), **fields, **named}) + "\n")


def _row_list(failed: list[dict[str, Any]], shown: int = 20) -> str:
    numbers = [str(item["row"]) for item in failed]
    more = f" and {len(numbers) - shown} more" if len(numbers) > shown else ""
    return "rows " + ", ".join(numbers[:shown]) + more + " (numbered from 0; see predict.json)"
