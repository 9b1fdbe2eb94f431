"""An approximate top-K index of item embeddings by inner product (faiss), for serving and
for ``gnnrec export --index``.

Maximum inner product search is turned into nearest-neighbour search (Bachrach et al., 2014):
items ``x`` become ``[x, sqrt(M^2 - |x|^2)]`` with ``M`` the largest item norm and a query ``q``
becomes ``[q, 0]``, so that ``|q' - x'|^2 = |q|^2 + M^2 - 2 q . x`` orders items as ``q . x``
does. ``hnsw`` (``IndexHNSWFlat``: ``m`` links a node, ``ef_construction``, ``ef_search``) and
``ivf`` (``IndexIVFFlat``: ``lists`` k-means cells, ``nprobe`` searched) search that space;
``flat`` searches it exhaustively (exact). Returned scores are the exact inner products of the
candidates found.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from gnnrec.common.atomic_files import read_json
from gnnrec.common.typed_fields import check_fields

INDEX_FILE = "items.faiss"


@dataclass(kw_only=True)
class IndexConfig:
    """Which index and its parameters (``lists = 0``: ``sqrt(I)`` cells)."""

    kind: Literal["hnsw", "ivf", "flat"] = "hnsw"
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    lists: int = 0
    nprobe: int = 32

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("m", "ef_construction", "ef_search", "nprobe"):
            if getattr(self, name) < 1:
                raise ValueError(f"index {name} must be at least 1, got {getattr(self, name)}")
        if self.lists < 0:
            raise ValueError(f"index lists must be >= 0 (0: automatic), got {self.lists}")


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ValueError(
            "an item index needs faiss: pip install faiss-cpu (or gnnrec[index])"
        ) from None
    return faiss


class ItemIndex:
    """Top-K items by inner product over ``items`` ``[I, H]`` (see the module docstring)."""

    def __init__(self, items: np.ndarray, config: IndexConfig, index=None):
        faiss = _faiss()
        self.config = config
        self.items = np.ascontiguousarray(items, dtype=np.float32)
        norms = np.einsum("ij,ij->i", self.items, self.items)
        self.max_norm2 = float(norms.max()) if len(norms) else 0.0
        if index is None:
            index = self._build(faiss, np.sqrt(np.maximum(self.max_norm2 - norms, 0.0)))
        self.index = index
        self._tune()

    def _build(self, faiss, extra: np.ndarray):
        d, n = self.items.shape[1] + 1, self.items.shape[0]
        space = np.concatenate([self.items, extra[:, None].astype(np.float32)], axis=1)
        c = self.config
        if c.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, c.m)
            index.hnsw.efConstruction = c.ef_construction
        elif c.kind == "ivf":
            # sqrt(I) cells, at most I / 39 (faiss's k-means wants 39 points a centroid)
            lists = c.lists or max(1, min(int(math.sqrt(n)), n // 39))
            index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, lists)
            index.train(space)
        else:
            index = faiss.IndexFlatL2(d)
        index.add(space)
        return index

    def _tune(self) -> None:
        if self.config.kind == "hnsw":
            self.index.hnsw.efSearch = self.config.ef_search
        elif self.config.kind == "ivf":
            self.index.nprobe = self.config.nprobe

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows [B, k] int64, scores [B, k] float32)``, best first: the items found with the
        largest inner products ``queries [B, H] . items``; a row not found is ``-1``, scored
        ``-inf``."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.items.shape[0])
        if self.config.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.config.ef_search, k)
        space = np.concatenate([queries, np.zeros((len(queries), 1), np.float32)], axis=1)
        _, rows = self.index.search(space, k)
        found = rows >= 0
        scores = np.full(rows.shape, -np.inf, dtype=np.float32)
        scores[found] = np.einsum(
            "bh,bh->b", np.repeat(queries, k, axis=0)[found.reshape(-1)], self.items[rows[found]]
        )
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)

    def save(self, folder: Path) -> dict:
        """Writes :data:`INDEX_FILE` into ``folder``; returns what ``export.json`` records."""
        _faiss().write_index(self.index, str(Path(folder) / INDEX_FILE))
        return {
            "file": INDEX_FILE,
            **asdict(self.config),
            "space": "items as [x, sqrt(M^2 - |x|^2)], queries as [q, 0] (L2 = inner product)",
            "max_norm2": self.max_norm2,
        }

    @staticmethod
    def load(folder: Path, items: np.ndarray) -> ItemIndex:
        """The index :meth:`save` wrote into an export ``folder`` beside ``items``."""
        meta = read_json(Path(folder) / "export.json")["index"]
        fields = {
            k: meta[k] for k in ("kind", "m", "ef_construction", "ef_search", "lists", "nprobe")
        }
        index = _faiss().read_index(str(Path(folder) / INDEX_FILE))
        return ItemIndex(items, IndexConfig(**fields), index)


def check_indexable(model) -> None:
    """``ValueError`` unless ``model`` (a :class:`~gnnrec.models.recommender.Recommender`)
    scores by dot products of its embeddings, which an index of item embeddings ranks by."""
    if not model.scores_are_dot_products:
        raise ValueError(
            f"{model.label} scores pairs with more than a dot product, so an index of "
            "item embeddings cannot rank for it; serve it without one"
        )
