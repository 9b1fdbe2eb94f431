"""Texts to node features through the cache: an encoder is built (and its model loaded) only
for texts the cache lacks; with ``num_workers > 1`` those are encoded in shards on Ray Data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gnnrec.common.log import get_logger
from gnnrec.data.sources import DEFAULT_CACHE
from gnnrec.encoders.base import encoder_key
from gnnrec.encoders.cache import FeatureCache, text_set_hash
from gnnrec.encoders.config import EncoderConfig
from gnnrec.encoders.factory import make_encoder

log = get_logger(__name__)


def feature_cache(cfg: EncoderConfig) -> FeatureCache:
    """The cache for this encoder configuration (no model is loaded to find it)."""
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else DEFAULT_CACHE / "features"
    meta = {"backend": cfg.backend, "model": cfg.model}
    return FeatureCache(cache_dir, encoder_key(cfg), meta, getattr(torch, cfg.dtype))


def encode_texts(
    texts: list[str], cfg: EncoderConfig, progress: bool = True
) -> tuple[torch.Tensor, int]:
    """``([T, F]`` features of ``texts``, how many distinct texts were encoded now``)``."""

    def encode_missing(missing: list[str]) -> torch.Tensor:
        if cfg.num_workers > 1:
            from gnnrec.encoders.sharded import encode_sharded

            work = feature_cache(cfg).folder / "shards" / text_set_hash(missing)
            return torch.from_numpy(np.asarray(encode_sharded(missing, work, cfg, progress)))
        encoder = make_encoder(cfg)
        try:
            features = encoder.encode(missing, progress)
        finally:
            encoder.close()
        if encoder.truncated:
            log.warning(
                "%d of %d texts were longer than %d tokens and were truncated",
                encoder.truncated,
                len(missing),
                cfg.max_length,
            )
        return features

    return feature_cache(cfg).get_or_encode(texts, encode_missing)
