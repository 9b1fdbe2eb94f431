"""Tolerances per dtype for kernel outputs against fp64 references computed from inputs already
rounded to that dtype: what is left is accumulation order and the final rounding. The one
table the tests and the benches' device checks read (a bench allows a multiple of it for
longer sums on real graphs)."""

from __future__ import annotations

import torch

TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float64: {"rtol": 1e-10, "atol": 1e-10},
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.float16: {"rtol": 2e-3, "atol": 2e-3},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 1.6e-2},
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """``actual`` equals the fp64 ``expected`` to ``dtype``'s tolerance."""
    torch.testing.assert_close(actual.double(), expected.double(), **TOLERANCES[dtype])
