"""Text -> node features: encoders (transformers, vLLM), the on-disk feature cache, and sharded
encoding on Ray Data."""

from gnnrec.encoders.base import Encoder, default_model_path, encoder_key
from gnnrec.encoders.cache import FeatureCache
from gnnrec.encoders.config import EncoderConfig
from gnnrec.encoders.factory import make_encoder
from gnnrec.encoders.node_features import encode_texts, feature_cache

__all__ = [
    "Encoder",
    "EncoderConfig",
    "FeatureCache",
    "default_model_path",
    "encode_texts",
    "encoder_key",
    "feature_cache",
    "make_encoder",
]
