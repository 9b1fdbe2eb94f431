"""Bit-identical training on any thread count: ``train.deterministic = true``.

ATen picks a parallel implementation for some ops whose sum order depends on how threads
interleave (on the CPU the scatter-adds behind an ID table's gradient: two identical runs on 2
threads differed by 3.5e-7 in the weights). With torch's deterministic algorithms those ops
take their ordered form: identical runs agree bit for bit, also between 1, 2 and 4 threads
(measured on ml-latest-small, IDs and text). What is *not* promised: equal bits on another CPU
(instruction sets order fp32 sums differently; see ``tests/test_golden_losses.py``) or another
torch build. On a GPU, cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` (set here when unset, before
cuBLAS starts), and an op with no deterministic CUDA form stops with torch's error naming it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

CUBLAS_DETERMINISTIC = ":4096:8"


@contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Runs the block with torch's deterministic algorithms when ``enabled`` (the process's
    previous setting restored after it); nothing changes when not."""
    if not enabled:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
