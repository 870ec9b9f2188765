"""``python eval.py run=<run dir> [data=... data.test_file=...]``: test a finished run's checkpoint in a new dir.

The config is the run's own (``.hydra/config.yaml``); ``key=value`` overrides apply on top, and a group choice
(``data=csv``) recomposes the run's overrides with this command's, the model always taken from the run. The
tokenizer, ``max_length`` and label names come from the run too; data with a label outside its set fails in the
preflight. The test itself is ``train.py``'s test-only path (``train=false``), so every check and the summary
are the same; ``eval.json`` and ``metrics.md`` add the comparison with what the run recorded.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from finetune import atomic
from finetune.errors import UserError
from finetune.run.outcome import read_summary
from finetune.run.rerun import apply_overrides, parse_overrides
from finetune.run.saved import check_saved_targets, read_saved_overrides
from finetune.use.finished import FinishedRun, open_run

OWN_KEYS = ("run", "ckpt_path", "trust_run", "hydra.")  # this command's, not the test config's
EVAL_FILE, TABLE_FILE = "eval.json", "metrics.md"


def eval_config(cfg: DictConfig) -> tuple[DictConfig, FinishedRun]:
    """The test-only config of the run ``cfg.run`` (or of ``cfg.ckpt_path``) in this command's dir, and the run."""
    from hydra.core.hydra_config import HydraConfig

    finished = open_run(cfg.get("run"), cfg.get("ckpt_path"), bool(cfg.get("trust_run")))
    hydra = HydraConfig.get()
    overrides = parse_overrides(list(hydra.overrides.task), OWN_KEYS)
    saved = finished.config
    run_settings = fixed_by_run(saved)
    refused = ("model", *(f"data.{name}" for name in (*run_settings, "label_names")))
    fixed = next((o.input_line for o in overrides if o.key_or_group.startswith(refused)), None)
    if fixed:
        named = ", ".join(["the model", *run_settings, "label_names"])
        raise UserError(f"{fixed}: eval.py takes {named} from the run; drop it")
    groups = [o for o in overrides if o.key_or_group in hydra.runtime.choices]
    if groups:  # the run's saved overrides recomposed: read as data, and what they compose to checked too
        test = recompose(finished.run_dir, [o.input_line for o in overrides])
        check_saved_targets(test, f"run={finished.run_dir}", bool(cfg.get("trust_run")))
    else:
        test = saved.copy()
        apply_overrides(test, overrides)
    if OmegaConf.select(test, "task.module") != OmegaConf.select(saved, "task.module"):
        raise UserError(
            f"the data chosen is for {OmegaConf.select(test, 'task.module')}, but the run trained "
            f"{OmegaConf.select(saved, 'task.module')}; give data of the run's task"
        )
    with open_dict(test):
        test.model = saved.model
        for name in run_settings:  # the labels come from the checkpoint (below)
            if name in saved.data:
                test.data[name] = saved.data[name]
        hparams = finished.hyper_parameters()
        if "label_names" in test.data and hparams.get("problem_type") != "regression":
            test.data.label_names = list(hparams.get("label_names") or []) or None
        if test.data.get("test_file") and _unset(test.data, "train_file"):
            test.data.train_file = test.data.test_file  # only the test split is used; the reader wants a train file
        for key, value in {"train": False, "test": True, "validate": False, "resume": False, "logger": None}.items():
            test[key] = value
        test.rerun, test.ckpt_path, test.task_name = None, str(finished.checkpoint), "eval"
        test.paths.output_dir = cfg.paths.output_dir
    return test, finished


def fixed_by_run(config: DictConfig) -> tuple[str, ...]:
    """The data settings a trained model fixes (``tokenizer``, ``max_length`` ...), as the run's data module class
    names them (``run_settings``); the label names are fixed too, and come from the checkpoint."""
    from hydra.utils import get_class

    return tuple(getattr(get_class(config.data._target_), "run_settings", ()))


def recompose(run_dir: Path, overrides: list[str]) -> DictConfig:
    """``train.yaml`` composed with the run's overrides and then this command's (a key given here replaces the
    run's); run-only settings (resume, paths, Hydra's) are left out."""
    from hydra import compose

    saved = read_saved_overrides(run_dir, f"run={run_dir}")
    mine = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    skip = ("hydra.", "paths.", "resume", "rerun", "trust_run", "ckpt_path", "train=", "test=", "validate", "task_name")
    kept = [o for o in saved if not o.lstrip("+~").startswith(skip) and o.split("=", 1)[0].lstrip("+~") not in mine]
    return compose("train", overrides=[*kept, *overrides])


def _unset(node: DictConfig, key: str) -> bool:
    """``key`` is a setting of ``node`` left empty (``???`` or null)."""
    return OmegaConf.is_missing(node, key) or (key in node and not node[key])


def write_report(cfg: DictConfig, finished: FinishedRun) -> None:
    """``eval.json`` (the metrics, the run and checkpoint, the data) and ``metrics.md`` (this eval beside what the
    run recorded for the same names) in the eval dir; the table is printed too."""
    here, run_dir = Path(cfg.paths.output_dir), finished.run_dir
    metrics = (read_summary(here) or {}).get("metrics") or {}
    tested = {k: v for k, v in metrics.items() if k.startswith("test")}
    recorded = (read_summary(run_dir) or {}).get("metrics") or {}
    report = {"run": str(run_dir), "checkpoint": str(cfg.ckpt_path), "data": OmegaConf.to_container(cfg.data)}
    atomic.write_json(here / EVAL_FILE, {**report, "metrics": tested})
    lines = ["| metric | this eval | the run's test |", "|---|---|---|"]
    for name, value in sorted(tested.items()):
        before = recorded.get(name)
        lines.append(f"| {name} | {value:.4f} | {'-' if before is None else f'{before:.4f}'} |")
    atomic.write_text(here / TABLE_FILE, "\n".join(lines) + "\n")
    print("\n".join([f"eval of {run_dir} ({Path(str(cfg.ckpt_path)).name}): {here}", *lines]))
