"""python predict.py run=<run dir> input=<file> [output=<file.jsonl>]   (label new rows; see README)"""

import hydra
from omegaconf import DictConfig

from finetune.cli import errors_in_one_line
from finetune.use.cli import predict_task


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    predict_task(cfg)


if __name__ == "__main__":
    with errors_in_one_line():  # a config Hydra cannot compose: one line, exit 2
        main()
