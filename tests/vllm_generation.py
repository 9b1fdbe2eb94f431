"""Generates the same prompts with the vLLM engine and with transformers on the tiny random
model, without and with openings to continue, and prints both as JSON. A script (vLLM spawns
processes, so it needs the ``__main__`` guard); ``tests/test_vllm_generator.py`` runs it:
``python vllm_generation.py FOLDER``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __name__ == "__main__":
    from tiny_llm import write_tiny_llm

    from gnnrec.explain.generator import Generator, GeneratorConfig

    folder = Path(sys.argv[1])
    model = write_tiny_llm(folder / "model")
    prompts = ["Recommend a space story", "Recommend a pirates film", "Why this one?"]
    answers = {}
    for backend, extra in (("vllm", {"dtype": "float32", "max_model_len": 256}), ("hf", {})):
        config = GeneratorConfig(
            backend=backend,
            model=str(model),
            cache_dir=str(folder / backend),
            max_new_tokens=8,
            engine_args=extra,
        )
        generator = Generator(config)
        opened = generator.generate(prompts, ["Recommended because", "", "Recommended"])
        answers[backend] = generator.generate(prompts) + opened
    print("RESULT " + json.dumps(answers), flush=True)
