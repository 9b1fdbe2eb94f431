"""The encoder a configuration names."""

from __future__ import annotations

from gnnrec.encoders.base import Encoder
from gnnrec.encoders.config import EncoderConfig


def make_encoder(config: EncoderConfig) -> Encoder:
    """The encoder of ``config.backend`` (``hf`` or ``vllm``); its model loads here."""
    if config.backend == "vllm":
        from gnnrec.encoders.vllm_encoder import VLLMEncoder

        return VLLMEncoder(config)
    from gnnrec.encoders.hf import TransformersEncoder

    return TransformersEncoder(config)
