"""Text -> node features: encoders and the on-disk feature cache."""

from gnnrec.encoders.cache import FeatureCache
from gnnrec.encoders.hf import EncoderConfig, TransformersEncoder, default_model_path

__all__ = ["EncoderConfig", "FeatureCache", "TransformersEncoder", "default_model_path"]
