"""``python export.py run=<run dir> [out=<dir>] [merge=true]``: the run's model as a Hugging Face folder that
``transformers.pipeline`` loads: safetensors weights, the config with ``id2label``/``label2id``, the data's
processor (a tokenizer with ``model_max_length`` set to the run's ``data.max_length``, an image processor), a
model card, and ``finetune_run.json`` (where it
came from). A peft run's export is its adapter in peft's format (``adapter_config.json`` and
``adapter_model.safetensors``, the task head included) for ``AutoPeftModelFor<Task>``; ``merge=true`` merges the
adapter into the base and writes a plain model. Written into a temporary folder beside ``out`` and renamed, so
``out`` is whole or absent.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from finetune import atomic
from finetune.adapters.attach import is_adapted
from finetune.errors import UserError
from finetune.use.finished import instantiate_data, open_run, trained_module
from finetune.use.inputs import claimed_output
from finetune.use.model_card import model_card
from finetune.use.settings import check_command_settings

log = logging.getLogger(__name__)


def export(cfg: DictConfig) -> Path:
    """Export ``cfg.run`` (or the run of ``cfg.ckpt_path``) to ``cfg.out`` (default ``<this dir>/model``)."""
    from hydra.utils import get_class

    check_command_settings(cfg, "export")
    finished = open_run(cfg.get("run"), cfg.get("ckpt_path"), bool(cfg.get("trust_run")))
    here = Path(cfg.paths.output_dir)
    out = Path(str(cfg.out)).expanduser() if cfg.get("out") else here / "model"
    module_class = get_class(finished.config.model._target_)
    if module_class.pipeline_task is None:
        raise UserError(
            f"{module_class.__name__} has no Hugging Face form to export; export takes a run of a Hugging Face "
            "task (sequence, token or image classification)"
        )
    if cfg.get("merge") and not finished.config.get("adapter"):
        raise UserError(f"merge=true merges an adapter, but {finished.run_dir} trained every weight (adapter=none); "
                        "leave merge out")  # fmt: skip
    with claimed_output(out, here, "out") as out:  # held until written: two exports never mix
        datamodule = instantiate_data(finished.config)
        module, _ = trained_module(finished, datamodule)
        _write_atomically(out, finished, module, datamodule, bool(cfg.get("merge")))
    log.info("exported %s (%s) to %s", finished.run_dir, module.pipeline_task, out)
    return out


def _write_atomically(out: Path, finished: Any, module: Any, datamodule: Any, merge: bool) -> None:
    """``write_folder`` into a hidden partial folder beside ``out``, renamed to ``out`` once whole."""
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        write_folder(partial, finished, module, datamodule, str(out), merge=merge)
        atomic.replace_folder(partial, out)
    except BaseException as error:
        shutil.rmtree(partial, ignore_errors=True)
        if atomic.is_disk_full(error):  # safetensors reports it in words: one line, not its traceback
            raise atomic.disk_full(out, None) from None
        raise


def write_folder(folder: Path, finished: Any, module: Any, datamodule: Any, final: str, merge: bool = False) -> None:
    """Weights (a peft run's: its adapter, or with ``merge`` the model with the adapter merged in), config,
    tokenizer, card and run record into ``folder``."""
    folder.mkdir(parents=True)
    adapter = is_adapted(module.net) and not merge
    module.save_pretrained(folder, merge=merge)
    datamodule.save_processor(folder)  # the tokenizer or image processor, set as training used it
    labels = (finished.summary.get("label_names") or None) if module.net.config.problem_type != "regression" else None
    atomic.write_text(folder / "README.md", model_card(finished, module, datamodule, labels, final, adapter))
    for path in folder.iterdir():  # some writers create files readable by their owner only
        path.chmod(0o644 & ~_umask())
    atomic.write_json(
        folder / "finetune_run.json",
        {
            "run": str(finished.run_dir),
            "checkpoint": str(finished.checkpoint),
            "test_metrics": finished.test_metrics,
            "pipeline_task": module.pipeline_task,
            "form": "adapter" if adapter else ("merged" if is_adapted(module.net) else "full"),
        },
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
