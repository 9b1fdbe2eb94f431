"""Large CPU tensors on transparent huge pages.

PyTorch's CPU allocator asks the kernel for huge pages (``madvise(MADV_HUGEPAGE)``) for every
allocation of 2 MB or more when ``THP_MEM_ALLOC_ENABLE=1`` is in the environment at its first
allocation. A sampled training step allocates a dozen ``[n, H]`` tensors; on 4 kB pages the
first touch of each fresh one faults page by page: a ``[400k, 64]`` float32 result costs
~30 ms on a 2-core machine, ~8 ms on huge pages (``bench/README.md``, steps). Kernels in
``madvise`` or ``always`` THP mode honour it; ``never`` ignores it.
"""

from __future__ import annotations

import os

SWITCH = "THP_MEM_ALLOC_ENABLE"


def use_huge_pages() -> None:
    """Turns huge pages on for this process, if torch has not allocated yet, and for the
    processes it starts (Ray's workers on this machine), unless the environment already says
    (``THP_MEM_ALLOC_ENABLE=0`` keeps them off)."""
    os.environ.setdefault(SWITCH, "1")
