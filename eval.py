"""python eval.py run=<run dir> [data=... data.test_file=...]   (test a finished run again; see README)"""

import hydra
from omegaconf import DictConfig

from finetune.cli import errors_in_one_line
from finetune.use.cli import eval_task


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    eval_task(cfg)


if __name__ == "__main__":
    with errors_in_one_line():  # a config Hydra cannot compose: one line, exit 2
        main()
