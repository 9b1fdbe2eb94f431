"""Text -> node features: encoders (transformers, vLLM), templates, the on-disk feature cache,
and sharded encoding on Ray Data."""

from gnnrec.encoders.base import Encoder, default_model_path, encoder_key, make_encoder
from gnnrec.encoders.cache import FeatureCache
from gnnrec.encoders.config import EncoderConfig

__all__ = [
    "Encoder",
    "EncoderConfig",
    "FeatureCache",
    "default_model_path",
    "encoder_key",
    "make_encoder",
]
