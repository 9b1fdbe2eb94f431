"""An on-disk cache of text embeddings keyed by encoder identity and text hash.

Layout: ``<cache_dir>/<encoder_key>/{hashes.npy, features.npy, meta.json}``: row ``r`` of the
float16 ``features`` ``[T, F]`` is the embedding of the text whose sha256 is ``hashes[r]``. New
rows are appended by writing both files to temporary names and renaming, so an interrupted run
leaves the previous cache intact.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


class FeatureCache:
    """Embeddings of texts under one encoder key; :meth:`get_or_encode` encodes only misses."""

    def __init__(self, cache_dir: str | Path, encoder_key: str, meta: dict | None = None):
        self.folder = Path(cache_dir) / encoder_key
        self.meta = meta or {}

    def _load(self) -> tuple[np.ndarray, np.ndarray | None]:
        hashes_file, features_file = self.folder / "hashes.npy", self.folder / "features.npy"
        if not hashes_file.exists() or not features_file.exists():
            return np.zeros(0, dtype="S32"), None
        hashes, features = np.load(hashes_file), np.load(features_file)
        if len(hashes) != len(features):
            # The two files were written by different runs; drop the cache rather than trust it.
            return np.zeros(0, dtype="S32"), None
        return hashes, features

    def get_or_encode(
        self, texts: list[str], encode: Callable[[list[str]], torch.Tensor]
    ) -> tuple[torch.Tensor, int]:
        """``[len(texts), F]`` float16 features and how many texts had to be encoded."""
        keys = np.array([text_hash(t) for t in texts], dtype="S32")
        hashes, features = self._load()
        row_of = {h: r for r, h in enumerate(hashes.tolist())}
        missing_keys, missing_texts = [], []
        for key, text in zip(keys.tolist(), texts):
            if key not in row_of and key not in missing_keys:
                row_of[key] = len(hashes) + len(missing_keys)
                missing_keys.append(key)
                missing_texts.append(text)
        if missing_texts:
            new = encode(missing_texts).to(torch.float16).numpy()
            hashes = np.concatenate([hashes, np.array(missing_keys, dtype="S32")])
            features = new if features is None else np.concatenate([features, new])
            self.folder.mkdir(parents=True, exist_ok=True)
            _atomic_save(self.folder / "features.npy", features)
            _atomic_save(self.folder / "hashes.npy", hashes)
            (self.folder / "meta.json").write_text(
                json.dumps(
                    {**self.meta, "rows": len(hashes), "dim": int(features.shape[1])}, indent=2
                )
            )
        rows = np.array([row_of[k] for k in keys.tolist()], dtype=np.int64)
        return torch.from_numpy(features[rows]), len(missing_texts)
