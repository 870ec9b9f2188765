"""python export.py run=<run dir> [out=<dir>]   (a Hugging Face folder with a model card; see README)"""

import hydra
from omegaconf import DictConfig

from finetune.cli import errors_in_one_line
from finetune.use.cli import export_task


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    export_task(cfg)


if __name__ == "__main__":
    with errors_in_one_line():  # a config Hydra cannot compose: one line, exit 2
        main()
