"""Training throughput of bert-base on synthetic batches: samples/s and model FLOPs utilisation (MFU).

    bash benchmarks/gpu.sh                                        # GPU: bert-base, batch 32 × 128, bf16, fused AdamW
    python -m benchmarks.gpu_throughput --device cpu --steps 2 --tiny    # smoke test, anywhere

The model is ``BertForSequenceClassification(BertConfig())``: bert-base-uncased's shape with random weights, so
nothing is downloaded. Each step: bf16 autocast forward, loss, backward, fused AdamW step.

FLOPs per trained token = 6·N + 12·L·d·T (PaLM, appendix B): N parameters outside the embeddings (an embedding
lookup is not a matmul; forward 2 FLOPs per weight, backward 4), plus the attention score and value matmuls
(L layers, hidden size d, sequence length T). MFU = FLOPs per token × tokens/s ÷ the GPU's peak dense bf16
FLOP/s, from ``PEAK_BF16`` or ``--peak-tflops``; n/a when neither applies (a CPU, an unknown GPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from benchmarks.common import emit

# Peak dense bf16 tensor FLOP/s from the vendors' data sheets (without sparsity). First match wins.
PEAK_BF16: list[tuple[str, float]] = [
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
]


def peak_flops(device_name: str, override_tflops: float | None) -> float | None:
    """Peak bf16 FLOP/s of the device: ``--peak-tflops`` if given, else the table, else None."""
    if override_tflops:
        return override_tflops * 1e12
    return next((peak for key, peak in PEAK_BF16 if key in device_name), None)


def flops_per_token(model: Any, seq_len: int) -> float:
    """6·N (non-embedding parameters) + 12·L·d·T, documented above."""
    config = model.config
    embedding = sum(p.numel() for name, p in model.named_parameters() if ".embeddings." in f".{name}")
    dense = sum(p.numel() for p in model.parameters()) - embedding
    return 6 * dense + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def build(tiny: bool) -> Any:
    """bert-base for sequence classification (2 labels) with random weights; a tiny BERT with ``tiny``."""
    from transformers import BertConfig, BertForSequenceClassification

    shape = {}
    if tiny:
        shape = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
        shape["vocab_size"] = 1000
    return BertForSequenceClassification(BertConfig(num_labels=2, **shape))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then time ``args.steps`` training steps; the numbers the report prints."""
    import torch

    where = args.device
    torch.manual_seed(0)
    model = build(args.tiny).to(where).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, fused=True)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (args.batch, args.seq), device=where)
    labels = torch.randint(0, 2, (args.batch,), device=where)
    bf16 = args.precision == "bf16"

    def sync() -> None:
        if where == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        with torch.autocast(device_type=where, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    sync()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - started
    name = torch.cuda.get_device_name(0) if where == "cuda" else "cpu"
    tokens_per_s = args.steps * args.batch * args.seq / seconds
    per_token = flops_per_token(model, args.seq)
    peak = peak_flops(name, args.peak_tflops)
    achieved = per_token * tokens_per_s
    return {
        "device": name,
        "precision": args.precision,
        "params": sum(p.numel() for p in model.parameters()),
        "batch": args.batch,
        "seq": args.seq,
        "steps": args.steps,
        "step_ms": 1000 * seconds / args.steps,
        "samples_per_s": args.steps * args.batch / seconds,
        "tokens_per_s": tokens_per_s,
        "flops_per_token": per_token,
        "achieved_tflops": achieved / 1e12,
        "peak_tflops": peak / 1e12 if peak else None,
        "mfu": achieved / peak if peak else None,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if where == "cuda" else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a smoke test (with --tiny)")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"), help="bf16: bf16-mixed autocast")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (kernels, allocator)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak bf16 dense TFLOP/s")
    parser.add_argument("--tiny", action="store_true", help="a tiny BERT (smoke tests), not bert-base")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        # Timing bert-base on the CPU would take minutes and measure nothing this benchmark is for.
        print("error: no CUDA GPU on this machine; --device cpu --steps 2 --tiny runs the smoke test", file=sys.stderr)
        raise SystemExit(2)
    result = measure(args)
    r = result
    model = "tiny BERT" if r["params"] < 10_000_000 else "bert-base"
    print(
        f"device: {r['device']}, precision {r['precision']}, {model} ({r['params'] / 1e6:.1f}M params), "
        f"batch {r['batch']} × seq {r['seq']}, {r['steps']} timed steps"
    )
    print(f"samples/s: {r['samples_per_s']:,.1f}   tokens/s: {r['tokens_per_s']:,.0f}   step: {r['step_ms']:.1f} ms")
    mfu = "n/a (no known peak for this device; pass --peak-tflops)"
    if r["mfu"] is not None:
        mfu = f"{100 * r['mfu']:.1f}% of {r['peak_tflops']:.0f} TFLOP/s bf16 dense"
    print(f"model FLOPs: {r['flops_per_token'] / 1e6:,.1f} MFLOP/token, {r['achieved_tflops']:.2f} TFLOP/s; MFU {mfu}")
    emit(result)
    return result


if __name__ == "__main__":
    main()
