"""Encodes the same texts with the vLLM engine and the transformers encoder and prints, as
JSON, the per-text cosine similarity summary. A script (vLLM spawns processes, so it needs the
``__main__`` guard); ``tests/test_vllm_encoder.py`` runs it."""

from __future__ import annotations

import json
import sys

if __name__ == "__main__":
    import torch

    from gnnrec.data import load_ml_latest_small
    from gnnrec.encoders import EncoderConfig
    from gnnrec.encoders.hf import TransformersEncoder
    from gnnrec.encoders.vllm_encoder import VLLMEncoder

    count = int(sys.argv[1])
    texts = load_ml_latest_small().items.texts()[: count - 2] + ["", "long " * 700]
    vllm_encoder = VLLMEncoder(EncoderConfig(backend="vllm"))
    hf_encoder = TransformersEncoder(EncoderConfig())
    a = vllm_encoder.encode(texts, progress=False)
    vllm_encoder.close()
    b = hf_encoder.encode(texts, progress=False)
    cosine = torch.nn.functional.cosine_similarity(a, b)
    result = {
        "texts": len(texts),
        "dim": a.shape[1],
        "min_cosine": float(cosine.min()),
        "mean_cosine": float(cosine.mean()),
        "norm_min": float(a.norm(dim=1).min()),
        "truncated_vllm": vllm_encoder.truncated,
        "truncated_hf": hf_encoder.truncated,
    }
    print("RESULT " + json.dumps(result), flush=True)
