"""An on-disk cache of text embeddings keyed by encoder identity, storage dtype and text hash.

Layout: ``<cache_dir>/<encoder_key>-<dtype>/{hashes.npy, features.npy, meta.json}``: row ``r``
of ``features`` ``[T, F]`` is the embedding of the text whose sha256 is ``hashes[r]`` (uint8
``[T, 32]``: all 32 bytes; caches written as NumPy ``S32``, which drops trailing zero bytes when
read back, are read through their raw bytes, so every text is found)
(bfloat16 is stored as its raw 16 bits, since NumPy has no bfloat16). New rows are appended by
writing both files to temporary names and renaming, so an interrupted run leaves the previous
cache intact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gnnrec.common.atomic_files import atomic_path, write_json_atomic
from gnnrec.common.log import get_logger

log = get_logger(__name__)

STORAGE = {torch.float16: np.float16, torch.float32: np.float32, torch.bfloat16: np.int16}


def text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def text_set_hash(texts: list[str]) -> str:
    """A short name for an ordered list of texts (the work folder of one sharded encoding)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text_hash(text))
    return digest.hexdigest()[:20]


def to_storage(features: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """``features`` in ``dtype`` as a NumPy array (bfloat16 as int16 bit patterns)."""
    converted = features.to(dtype)
    return (converted.view(torch.int16) if dtype == torch.bfloat16 else converted).numpy()


def from_storage(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.view(torch.bfloat16) if dtype == torch.bfloat16 else tensor


def atomic_save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


class FeatureCache:
    """Embeddings of texts under one encoder key; :meth:`get_or_encode` encodes only misses."""

    def __init__(
        self,
        cache_dir: str | Path,
        encoder_key: str,
        meta: dict | None = None,
        dtype: torch.dtype = torch.float16,
    ):
        if dtype not in STORAGE:
            raise ValueError(f"features can be stored as {list(STORAGE)}, not {dtype}")
        self.dtype = dtype
        self.folder = Path(cache_dir) / f"{encoder_key}-{str(dtype).split('.')[-1]}"
        self.meta = meta or {}

    def _load(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(hashes uint8 [T, 32], features [T, F])``, or an empty cache."""
        empty = np.zeros((0, 32), dtype=np.uint8), None
        hashes_file, features_file = self.folder / "hashes.npy", self.folder / "features.npy"
        if not hashes_file.exists() or not features_file.exists():
            return empty
        try:
            hashes, features = np.load(hashes_file), np.load(features_file)
        except (ValueError, OSError, EOFError) as err:
            log.warning(
                "%s: damaged feature cache (%s); it is rebuilt from the texts", self.folder, err
            )
            return empty
        if hashes.dtype == np.dtype("S32"):  # the old format: its buffer holds all 32 bytes
            hashes = hashes.view(np.uint8).reshape(-1, 32)
        if len(hashes) != len(features) or hashes.shape[1:] != (32,):
            # The two files were written by different runs; rebuild rather than trust them.
            log.warning("%s: inconsistent feature cache; it is rebuilt from the texts", self.folder)
            return empty
        try:
            recorded = json.loads((self.folder / "meta.json").read_text()).get("dim")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if features.ndim != 2 or recorded not in (None, features.shape[1]):
            log.warning(
                "%s: features.npy is %s wide but meta.json records %s (a matrix of another "
                "encoder); it is rebuilt from the texts",
                self.folder,
                features.shape[1:],
                recorded,
            )
            return empty
        return hashes, features

    def get_or_encode(
        self, texts: list[str], encode: Callable[[list[str]], torch.Tensor]
    ) -> tuple[torch.Tensor, int]:
        """``[len(texts), F]`` features in the cache's dtype, and how many texts were encoded."""
        keys = [text_hash(t) for t in texts]
        hashes, features = self._load()
        row_of: dict[bytes, int] = {}
        for r, h in enumerate(hashes):
            row_of.setdefault(h.tobytes(), r)  # the first row of a text stored twice
        missing_keys, missing_texts = [], []
        for key, text in zip(keys, texts):
            if key not in row_of:
                row_of[key] = len(hashes) + len(missing_keys)
                missing_keys.append(key)
                missing_texts.append(text)
        if missing_texts:
            new = to_storage(encode(missing_texts), self.dtype)
            if len(new) != len(missing_texts):
                raise RuntimeError(
                    f"the encoder returned {len(new)} rows for {len(missing_texts)} texts"
                )
            if features is not None and new.shape[1] != features.shape[1]:
                raise ValueError(
                    f"{self.folder}: the cached features are {features.shape[1]} wide, the "
                    f"encoder gives {new.shape[1]}: the cache holds another encoder's features "
                    "under this one's key; remove that folder to rebuild it"
                )
            added = np.frombuffer(b"".join(missing_keys), dtype=np.uint8).reshape(-1, 32)
            hashes = np.concatenate([hashes, added])
            features = new if features is None else np.concatenate([features, new])
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_save(self.folder / "features.npy", features)
            atomic_save(self.folder / "hashes.npy", hashes)
            meta = {
                **self.meta,
                "rows": len(hashes),
                "dim": int(features.shape[1]),
                "dtype": str(self.dtype).split(".")[-1],
            }
            write_json_atomic(self.folder / "meta.json", meta)
        rows = np.array([row_of[k] for k in keys], dtype=np.int64)
        return from_storage(features[rows], self.dtype), len(missing_texts)
