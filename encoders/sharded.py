"""Sharded, resumable encoding on Ray Data.

``T`` texts are cut into shards of ``shard_size`` consecutive node ids. An actor pool of
``num_workers`` encoders (Ray Data ``map_batches`` with an :class:`~ray.data.ActorPoolStrategy`)
encodes the shards that are not done yet; each worker writes its shard as
``shards/shard-NNNNN.npz`` (``node_ids [S]``, ``features [S, F]``) under a temporary name and
renames it, then writes the ``.json`` record with the file's sha256. Finished shards are never
encoded again: a run killed and started again skips them, writes each node once, and ends
byte-identical to an uninterrupted run (each shard is encoded the same way whichever worker
takes it). Finally the shards are checked and assembled, in node order, into the memory-mapped
``features.npy`` beside ``manifest.json`` (model, dims, dtype, text hashes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gnnrec.common.atomic_files import atomic_path, claim_folder, write_json_atomic
from gnnrec.common.ray_cluster import connect
from gnnrec.data.errors import DataError
from gnnrec.encoders.base import encoder_key
from gnnrec.encoders.cache import from_storage, text_hash, to_storage
from gnnrec.encoders.config import EncoderConfig


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shard_text_hash(texts: list[str]) -> str:
    return hashlib.sha256(b"".join(text_hash(t) for t in texts)).hexdigest()


def shard_path(folder: Path, shard: int) -> Path:
    return folder / "shards" / f"shard-{shard:05d}.npz"


class ShardEncoder:
    """A Ray Data actor: loads the encoder once, then encodes and writes whole shards."""

    def __init__(self, config: dict, texts_ref, folder: str, shard_size: int):
        import ray

        from gnnrec.encoders.factory import make_encoder

        torch.set_num_threads(
            max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        )
        self.config = EncoderConfig(**config)
        self.encoder = make_encoder(self.config)
        self.texts = ray.get(texts_ref[0]) if isinstance(texts_ref, list) else texts_ref
        self.folder, self.shard_size = Path(folder), shard_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for shard in batch["shard"].tolist():
            write_shard(
                self.folder,
                shard,
                self.shard_size,
                self.texts,
                self.encoder,
                getattr(torch, self.config.dtype),
            )
        return {"shard": batch["shard"]}


def write_shard(
    folder: Path, shard: int, shard_size: int, texts: list[str], encoder, dtype: torch.dtype
) -> Path:
    """Encodes shard ``shard`` and writes it atomically, then its record."""
    first = shard * shard_size
    node_ids = np.arange(first, min(first + shard_size, len(texts)), dtype=np.int64)
    shard_texts = [texts[i] for i in node_ids]
    truncated_before = encoder.truncated
    features = to_storage(encoder.encode(shard_texts, progress=False), dtype)
    path = shard_path(folder, shard)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, node_ids=node_ids, features=features)
    record = {
        "shard": shard,
        "rows": len(node_ids),
        "sha256": _sha256(path),
        "text_hash": _shard_text_hash(shard_texts),
        "truncated": encoder.truncated - truncated_before,
    }
    write_json_atomic(path.with_suffix(".json"), record, indent=None)
    return path


def shard_status(folder: Path, shard: int, texts: list[str], shard_size: int) -> str:
    """``done``, ``todo`` (absent, half-written, or for other texts) or raises for corruption."""
    path = shard_path(folder, shard)
    record_path = path.with_suffix(".json")
    if not record_path.exists():
        return "todo"  # never started, or killed before its record was written
    record = json.loads(record_path.read_text())
    shard_texts = texts[shard * shard_size : (shard + 1) * shard_size]
    if record["text_hash"] != _shard_text_hash(shard_texts):
        return "todo"
    if not path.exists():
        raise DataError(
            "shard file is missing but its record exists; delete the record "
            f"{record_path.name} and run again to re-encode the shard",
            path,
        )
    if _sha256(path) != record["sha256"]:
        raise DataError(
            "shard file is corrupted (its sha256 does not match its record); "
            "delete it and its .json record and run again to re-encode",
            path,
        )
    return "done"


def encode_sharded(
    texts: list[str],
    folder: str | Path,
    config: EncoderConfig,
    progress: bool = True,
    meta: dict | None = None,
) -> np.ndarray:
    """Encodes ``texts`` in shards on Ray Data (resuming what is done) and returns the
    memory-mapped ``[T, F]`` features in node order (bfloat16 as int16 bits, see
    :func:`gnnrec.encoders.cache.from_storage`)."""
    import ray

    folder = claim_folder(folder, "encoding", ["shards", "features.npy", "manifest.json"])
    (folder / "shards").mkdir(exist_ok=True)
    size = config.shard_size
    num_shards = (len(texts) + size - 1) // size
    todo = [s for s in range(num_shards) if shard_status(folder, s, texts, size) == "todo"]
    if todo:
        connect(log_to_driver=False)
        texts_ref = [ray.put(texts)]
        workers = min(config.num_workers, len(todo))
        dataset = ray.data.from_items([{"shard": s} for s in todo], override_num_blocks=len(todo))
        done = dataset.map_batches(
            ShardEncoder,
            batch_size=1,
            num_cpus=1,
            num_gpus=1 if ray.cluster_resources().get("GPU", 0) > 0 else 0,
            compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={
                "config": asdict(config),
                "texts_ref": texts_ref,
                "folder": str(folder),
                "shard_size": size,
            },
        )
        bar = tqdm(
            total=num_shards,
            initial=num_shards - len(todo),
            desc="encode shards",
            unit="shard",
            disable=not progress,
        )
        for _ in done.iter_rows():
            bar.update(1)
        bar.close()
    return assemble(folder, texts, config, meta)


def assemble(
    folder: Path, texts: list[str], config: EncoderConfig, meta: dict | None = None
) -> np.ndarray:
    """Checks every shard and writes ``features.npy`` (node order) and ``manifest.json``
    (``meta``, e.g. the text templates, is recorded in it too)."""
    size = config.shard_size
    num_shards = (len(texts) + size - 1) // size
    statuses = [shard_status(folder, s, texts, size) for s in range(num_shards)]
    missing = [s for s, status in enumerate(statuses) if status != "done"]
    if missing:
        raise DataError(
            f"{len(missing)} shard(s) are not encoded (first: "
            f"{shard_path(folder, missing[0]).name}); run the encoding again",
            folder,
        )
    manifest_path = folder / "manifest.json"
    out_path = folder / "features.npy"
    manifest = {
        **(meta or {}),
        "encoder_key": encoder_key(config),
        "model": config.model or "all-MiniLM-L6-v2",
        "backend": config.backend,
        "pooling": config.pooling,
        "normalize": config.normalize,
        "max_length": config.max_length,
        "dtype": config.dtype,
        "num_texts": len(texts),
        "shard_size": size,
        "text_hashes": [
            _shard_text_hash(texts[s * size : (s + 1) * size]) for s in range(num_shards)
        ],
    }
    if manifest_path.exists() and out_path.exists():
        old = json.loads(manifest_path.read_text())
        if {k: v for k, v in old.items() if k not in ("dim", "truncated")} == manifest:
            return np.load(out_path, mmap_mode="r")
    with atomic_path(out_path) as tmp:
        out = None
        truncated = 0
        for shard in range(num_shards):
            with np.load(shard_path(folder, shard)) as data:
                node_ids, features = data["node_ids"], data["features"]
            expected = np.arange(shard * size, min((shard + 1) * size, len(texts)))
            if not np.array_equal(node_ids, expected):
                raise DataError("shard holds the wrong node ids", shard_path(folder, shard))
            if out is None:
                out = np.lib.format.open_memmap(
                    tmp, mode="w+", dtype=features.dtype, shape=(len(texts), features.shape[1])
                )
            if features.shape[1] != out.shape[1] or features.dtype != out.dtype:
                raise DataError(
                    "shard has another width or dtype than shard 0", shard_path(folder, shard)
                )
            out[expected] = features
            truncated += json.loads(shard_path(folder, shard).with_suffix(".json").read_text())[
                "truncated"
            ]
        out.flush()
        del out
    manifest.update(dim=int(np.load(out_path, mmap_mode="r").shape[1]), truncated=truncated)
    write_json_atomic(manifest_path, manifest)
    return np.load(out_path, mmap_mode="r")


def load_features(folder: str | Path) -> torch.Tensor:
    """The assembled features of an encoding folder as a tensor of the manifest's dtype."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    return from_storage(
        np.load(folder / "features.npy", mmap_mode="r"), getattr(torch, manifest["dtype"])
    )
