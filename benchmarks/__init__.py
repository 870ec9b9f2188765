"""Throughput benchmarks: the project's loop against a plain PyTorch loop and the Hugging Face Trainer (see README)."""
