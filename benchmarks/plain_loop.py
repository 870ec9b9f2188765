"""Variant (a), ``plain``: the textbook PyTorch loop, fed exactly the batches the project's run gets.

    python -m benchmarks.plain_loop --spec spec.json     (benchmarks.bench writes the spec and runs this)

Forward, cross-entropy, backward, ``clip_grad_norm_``, AdamW step, schedule step, ``zero_grad``; fp32, no
framework. The batches come from the project's own batch sampler and collator with the project's seed and
``group_by_length``, so the index order and the padding match the project run (``tests/test_bench.py`` checks it);
the optimizer groups, fused kernels and warmup follow the project's rules, so both do the same arithmetic.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

from benchmarks.common import TokenCounter, TrainClock, device, emit, eval_record, eval_steps, load_spec, peak_rss_mb
from benchmarks.data import read_csv


def encode(tokenizer: Any, path: str, max_length: int) -> list[dict[str, Any]]:
    """Tokenized examples of a CSV as the project tokenizes them (truncated, unpadded), each with ``labels``."""
    texts, labels = read_csv(Path(path))
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    keys = list(encoded.keys())
    return [{**{k: encoded[k][i] for k in keys}, "labels": labels[i]} for i in range(len(texts))]


def train_loader(features: list[dict[str, Any]], tokenizer: Any, spec: dict[str, Any]) -> Any:
    """The project's training batches: its batch sampler, ``DataCollatorWithPadding`` and loader generator."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    from finetune.data.resumable import ShuffledBatchSampler
    from finetune.data.sampler import LengthGroupedBatchSampler

    size, seed = spec["batch_size"], spec["seed"]
    if spec["group_by_length"]:
        sampler = LengthGroupedBatchSampler([len(f["input_ids"]) for f in features], size, seed)
    else:
        sampler = ShuffledBatchSampler(len(features), size, seed)
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=spec["pad_to_multiple_of"])
    # The project's loader has its own seeded generator; the same here keeps the global RNG (dropout) in step.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(features, batch_sampler=sampler, collate_fn=collator, generator=generator)


def make_optimizer(model: Any, spec: dict[str, Any]) -> Any:
    """AdamW with the project's groups: weight decay on matrices only (the 2-D rule of finetune.optim.param_groups)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2]},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    fused = spec["fused"]
    if fused is None:  # the project's ``fused: null``: fused wherever torch has the kernels
        fused = next(model.parameters()).device.type in ("cpu", "cuda", "mps")
    return torch.optim.AdamW(
        groups,
        lr=spec["lr"],
        weight_decay=spec["weight_decay"],
        betas=tuple(spec["betas"]),
        eps=spec["eps"],
        fused=fused,
    )


def accuracy(model: Any, loader: Any, where: str) -> float:
    """Dev accuracy (eval mode, no gradients); leaves the model in train mode."""
    import torch

    model.eval()
    correct = seen = 0
    with torch.inference_mode():
        for batch in loader:
            batch = {k: v.to(where) for k, v in batch.items()}
            labels = batch.pop("labels")
            correct += int((model(**batch).logits.argmax(-1) == labels).sum())
            seen += len(labels)
    model.train()
    return correct / seen


def seed_all(seed: int) -> None:
    """Seed Python, numpy and torch, as Lightning's ``seed_everything`` does."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one epoch; the result dict of ``benchmarks.common``."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        get_linear_schedule_with_warmup,
    )

    seed_all(spec["seed"])
    where = device()
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    train = encode(tokenizer, spec["train_csv"], spec["max_length"])
    dev = encode(tokenizer, spec["dev_csv"], spec["max_length"])
    model = AutoModelForSequenceClassification.from_pretrained(spec["model_dir"], num_labels=2).to(where).train()
    optimizer = make_optimizer(model, spec)
    loader = train_loader(train, tokenizer, spec)
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=spec["pad_to_multiple_of"])
    dev_loader = DataLoader(dev, batch_size=spec["eval_batch_size"], collate_fn=collator)
    total = len(loader)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(spec["warmup_ratio"] * total), total)
    evaluate_at = set(eval_steps(total))
    # The project's precision: under bf16-mixed, forward and loss in bf16 autocast, as Lightning runs them.
    bf16 = spec.get("project_precision") == "bf16-mixed"

    def autocast() -> Any:
        return torch.autocast(where, dtype=torch.bfloat16, enabled=bf16)

    clock, counter, evals, first_step = TrainClock(), TokenCounter(), [], None
    clock.start()
    for step, batch in enumerate(loader, 1):
        counter.add(batch["attention_mask"])
        batch = {k: v.to(where) for k, v in batch.items()}
        labels = batch.pop("labels")
        with autocast():
            loss = torch.nn.functional.cross_entropy(model(**batch).logits.float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec["clip"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if first_step is None:
            first_step = time.time()
        if step in evaluate_at:
            if where == "cuda":
                torch.cuda.synchronize()
            clock.pause()
            with autocast():
                evals.append(eval_record(step, total, clock.elapsed(), accuracy(model, dev_loader, where)))
            clock.start()
    clock.pause()
    settings = {"precision": "bf16-mixed" if bf16 else "32", "group_by_length": spec["group_by_length"]}
    settings["optimizer"] = type(optimizer).__name__
    settings.update(fused=optimizer.defaults.get("fused"), padding="dynamic", device=where, steps=total)
    return {
        "train_time_s": clock.total,
        **counter.as_dict(),
        "evals": evals,
        "first_step_unix": first_step,
        "peak_rss_mb": peak_rss_mb(),
        "settings": settings,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="JSON settings written by benchmarks.bench")
    emit(run(load_spec(parser.parse_args(argv).spec)))


if __name__ == "__main__":
    main()
