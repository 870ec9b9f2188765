"""The Hydra tasks of ``eval.py``, ``predict.py`` and ``export.py``: one line and exit status 2 for a mistake, 130
for Ctrl-C, as ``train.py`` does (``finetune.cli``). Torch loads only once a command runs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from finetune.errors import UserError, refuse
from finetune.use.refusals import one_record_when_refused


def eval_task(cfg: DictConfig) -> None:
    """Test a finished run's checkpoint through ``train.py``'s test-only path, then write ``eval.json``."""
    from finetune.cli import run_task
    from finetune.use.evaluate import eval_config, write_report

    found: dict[str, Any] = {}

    def prepare(command: DictConfig) -> DictConfig:
        test, found["run"] = eval_config(command)
        return test

    with one_record_when_refused(Path(cfg.paths.output_dir)):
        run_task(cfg, prepare, lambda test: write_report(test, found["run"]))


def predict_task(cfg: DictConfig) -> None:
    """Predict a file's rows with a finished run's model (``finetune.use.predict``)."""
    from finetune.use.predict import predict

    with one_record_when_refused(Path(cfg.paths.output_dir)):
        run_command(lambda: predict(cfg), cfg.get("verbose") is True)


def export_task(cfg: DictConfig) -> None:
    """Export a finished run as a Hugging Face folder (``finetune.use.export``)."""
    from finetune.use.export import export

    with one_record_when_refused(Path(cfg.paths.output_dir)):
        run_command(lambda: export(cfg), cfg.get("verbose") is True)


def run_command(action: Callable[[], Any], verbose: bool = False) -> Any:
    """Run ``action``; a ``UserError`` (also wrapped by Hydra's instantiate) is one line and exit 2. ``verbose``:
    let the libraries print their progress bars and warnings (``finetune.run.console``)."""
    from finetune.cli import user_error_inside
    from finetune.run.console import quiet_libraries
    from finetune.trainer.distributed import one_job_of_processes

    try:
        with one_job_of_processes():  # a DDP predict closes its process group
            quiet_libraries(verbose)
            return action()
    except MissingMandatoryValue as error:  # input=??? left unset
        raise refuse(f"{error.full_key} is not set: give it on the command line ({error.full_key}=...)") from None
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); nothing was written to the output", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as raised:
        error = user_error_inside(raised)
        if isinstance(error, UserError):
            raise refuse(str(error)) from None
        raise


def hydra_app(config_name: str, task: Callable[[DictConfig], Any]) -> None:
    """Run ``task`` as the Hydra app of ``conf/<config_name>.yaml`` (the console scripts' entry)."""
    import hydra

    from finetune.cli import config_dir, errors_in_one_line

    with errors_in_one_line():
        hydra.main(version_base="1.3", config_path=config_dir(), config_name=config_name)(task)()


def eval_cli() -> None:
    """Entry point of ``finetune-eval``."""
    hydra_app("eval", eval_task)


def predict_cli() -> None:
    """Entry point of ``finetune-predict``."""
    hydra_app("predict", predict_task)


def export_cli() -> None:
    """Entry point of ``finetune-export``."""
    hydra_app("export", export_task)
