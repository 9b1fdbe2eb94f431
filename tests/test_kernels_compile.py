"""Every Triton kernel compiles ahead of time for Hopper and Ampere with the installed Triton.

The interpreter runs kernels as Python and would not notice code the GPU compiler rejects, so
``tests/compile_kernels.py`` compiles every variant to a cubin in a process without
``TRITON_INTERPRET``. ``make test`` also runs it under Triton 3.6, the GPU image's version.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gnnrec.kernels import BACKENDS


@pytest.mark.skipif("triton" not in BACKENDS, reason="triton is not installed")
def test_every_kernel_variant_compiles_for_sm90_and_sm80():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = Path(__file__).with_name("compile_kernels.py")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "compiled 142 kernels" in done.stdout
