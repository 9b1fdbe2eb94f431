"""The transformers encoder: the CPU default and the parity reference for the vLLM encoder.

Pooling over the last hidden states ``h`` ``[B, T, H]`` with attention mask ``m``: ``mean``
``sum_t m_t h_t / sum_t m_t`` (sentence-transformers style), ``cls`` ``h_0``, ``last`` the last
unpadded token; then optionally L2-normalised.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from gnnrec.common.devices import resolve_device
from gnnrec.encoders.base import count_truncated, resolve_model_path, untruncated_ids
from gnnrec.encoders.config import EncoderConfig


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``[B, H]`` from ``hidden`` ``[B, T, H]`` and a right-padded ``mask`` ``[B, T]``."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        last = mask.sum(1).clamp(min=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


class TransformersEncoder:
    """Encodes texts with a local transformers model folder (no hub access)."""

    def __init__(self, config: EncoderConfig):
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise ImportError(
                "the hf encoder needs transformers: pip install 'gnnrec[text]'"
            ) from None

        self.config = config
        self.model_path = resolve_model_path(config)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        self.device = resolve_device(config.device, "encoder.device")
        model = AutoModel.from_pretrained(self.model_path, local_files_only=True)
        self.model = model.eval().to(self.device)
        self.max_length = min(config.max_length, self.tokenizer.model_max_length)
        self.truncated = 0

    @torch.inference_mode()
    def encode(self, texts: list[str], progress: bool = True) -> torch.Tensor:
        """``[len(texts), H]`` float32 embeddings; texts batched in order of length."""
        lengths = [len(ids) for ids in untruncated_ids(self.tokenizer, texts)]
        self.truncated += count_truncated(lengths, self.max_length)
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
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
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            pooled = pool(hidden, batch["attention_mask"], self.config.pooling)
            if self.config.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[index] = pooled.float().cpu()
        return out

    def close(self) -> None:
        """Releases the model (the interface every encoder has; nothing runs in the background)."""
        self.model = None
