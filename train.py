"""python train.py [group=option ...] [key=value ...]   (see README; -m runs a sweep)"""

import hydra
from omegaconf import DictConfig

from finetune.cli import errors_in_one_line, run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Fine-tune, test and return the optimized metric (Hydra's config path is relative to this file)."""
    return run_task(cfg)


if __name__ == "__main__":
    with errors_in_one_line():  # a config Hydra cannot compose: one line, exit 2
        main()
