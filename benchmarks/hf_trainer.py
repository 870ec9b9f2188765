"""Variants (b) and (c): the Hugging Face ``Trainer`` on the same sentences, model, batch size and optimizer settings.

    python -m benchmarks.hf_trainer --spec spec.json --mode run_glue    (b) run_glue's defaults
    python -m benchmarks.hf_trainer --spec spec.json --mode fastest     (c) dynamic padding, length grouping, bf16

``run_glue``: every example padded to ``max_length`` when tokenized (run_glue's ``pad_to_max_length=True``),
``default_data_collator``, random order, fp32, the Trainer's default optimizer. ``fastest``: unpadded examples,
``DataCollatorWithPadding``, ``train_sampling_strategy="group_by_length"``, bf16 autocast where the hardware has
bf16. Both: the spec's lr, batch, weight decay, warmup share, clipping and seed; linear schedule; 1 epoch;
no saving, no reporting. Needs ``accelerate`` (``pip install -r benchmarks/requirements.txt``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    TokenCounter,
    TrainClock,
    device,
    emit,
    eval_interval,
    eval_record,
    has_bf16,
    load_spec,
    peak_rss_mb,
)
from benchmarks.data import read_csv
from finetune.trainer.precision import pad_multiple

MODES = ("run_glue", "fastest")


def dataset(tokenizer: Any, path: str, max_length: int, pad: bool) -> Any:
    """A ``datasets.Dataset`` of tokenized examples with ``labels``; padded to ``max_length`` if ``pad``."""
    from datasets import Dataset

    texts, labels = read_csv(Path(path))
    padding = "max_length" if pad else False
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=padding)
    return Dataset.from_dict({**encoded, "labels": labels})


def training_arguments(spec: dict[str, Any], mode: str, output_dir: str, batches: int) -> Any:
    """TrainingArguments for ``mode`` over ``batches`` training batches (transformers 5 names:
    ``train_sampling_strategy`` replaced ``group_by_length``, ``eval_strategy`` ``evaluation_strategy``)."""
    from transformers import TrainingArguments

    fastest = mode == "fastest"
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=spec["eval_batch_size"],
        learning_rate=spec["lr"],
        weight_decay=spec["weight_decay"],
        adam_beta1=spec["betas"][0],
        adam_beta2=spec["betas"][1],
        adam_epsilon=spec["eps"],
        max_grad_norm=spec["clip"],
        num_train_epochs=1,
        lr_scheduler_type="linear",
        # Whole steps rounded as the project rounds them (the Trainer's own ratio rounds up), so that the
        # schedule is the same in every variant.
        warmup_steps=round(spec["warmup_ratio"] * batches),
        seed=spec["seed"],
        eval_strategy="steps",
        eval_steps=eval_interval(batches),
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        bf16=fastest and has_bf16(),
        use_cpu=device() == "cpu",  # the Trainer refuses bf16 on a CPU unless told it is one
        train_sampling_strategy="group_by_length" if fastest else "random",
    )


def make_trainer(spec: dict[str, Any], mode: str, output_dir: str) -> Any:
    """A Trainer that times training apart from evaluation and counts the tokens of every training batch."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        default_data_collator,
        set_seed,
    )

    set_seed(spec["seed"])
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    pad = mode == "run_glue"
    train = dataset(tokenizer, spec["train_csv"], spec["max_length"], pad)
    dev = dataset(tokenizer, spec["dev_csv"], spec["max_length"], pad)
    model = AutoModelForSequenceClassification.from_pretrained(spec["model_dir"], num_labels=2)
    batches = -(-len(train) // spec["batch_size"])
    args = training_arguments(spec, mode, output_dir, batches)
    multiple = pad_multiple("bf16-mixed" if args.bf16 else "32", device())  # as the project pads
    collator = default_data_collator if pad else DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)

    class Clocked(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            trainer.clock.start()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            trainer.first_step = trainer.first_step or time.time()

        def on_train_end(self, *_: Any, **__: Any) -> None:
            trainer.clock.pause()

    class BenchTrainer(Trainer):
        def training_step(self, model: Any, inputs: dict[str, Any], *rest: Any, **kwargs: Any) -> Any:
            self.counter.add(inputs["attention_mask"])
            return super().training_step(model, inputs, *rest, **kwargs)

        def evaluate(self, *rest: Any, **kwargs: Any) -> dict[str, float]:
            if device() == "cuda":
                import torch

                torch.cuda.synchronize()
            running = self.clock.running
            self.clock.pause()
            metrics = super().evaluate(*rest, **kwargs)
            step = self.state.global_step
            self.evals.append(eval_record(step, batches, self.clock.elapsed(), metrics["eval_accuracy"]))
            if running:
                self.clock.start()
            return metrics

    def accuracy(prediction: Any) -> dict[str, float]:
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    trainer = BenchTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=dev,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=accuracy,
        callbacks=[Clocked()],
    )
    trainer.clock, trainer.counter, trainer.evals, trainer.first_step = TrainClock(), TokenCounter(), [], None
    return trainer


def run(spec: dict[str, Any], mode: str) -> dict[str, Any]:
    """Train one epoch in ``mode``; the result dict of ``benchmarks.common``."""
    with tempfile.TemporaryDirectory(prefix="bench_hf_") as output_dir:
        trainer = make_trainer(spec, mode, output_dir)
        trainer.train()
        if not trainer.evals or trainer.evals[-1]["step"] != trainer.state.global_step:
            trainer.evaluate()  # the final accuracy, when the last step is not a multiple of eval_steps
    args = trainer.args
    settings = {"precision": "bf16-mixed" if args.bf16 else "32", "group_by_length": mode == "fastest"}
    optimizer = str(getattr(args.optim, "value", args.optim))
    settings.update(optimizer=optimizer, fused="fused" in optimizer)
    settings.update(padding="max_length" if mode == "run_glue" else "dynamic")
    settings.update(device=device(), steps=trainer.state.global_step)
    return {
        "train_time_s": trainer.clock.total,
        **trainer.counter.as_dict(),
        "evals": trainer.evals,
        "first_step_unix": trainer.first_step,
        "peak_rss_mb": peak_rss_mb(),
        "settings": settings,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="JSON settings written by benchmarks.bench")
    parser.add_argument("--mode", choices=MODES, required=True)
    args = parser.parse_args(argv)
    emit(run(load_spec(args.spec), args.mode))


if __name__ == "__main__":
    main()
