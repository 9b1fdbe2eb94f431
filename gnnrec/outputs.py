"""What a trained run writes for people and services: top-K recommendation tables and the
exported embeddings. Neither ever replaces a file or folder it did not write: a table replaces
only an earlier recommendation table, an export only an earlier export
(:mod:`gnnrec.common.atomic_files`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from gnnrec.common.atomic_files import atomic_path, staged_folder
from gnnrec.common.log import get_logger
from gnnrec.config import RunConfig
from gnnrec.data.columns import arrow_strings
from gnnrec.models.recommender import Recommender
from gnnrec.pipeline import Prepared, data_fingerprint
from gnnrec.provenance import PROVENANCE, run_provenance
from gnnrec.train.evaluate import node_embeddings
from gnnrec.train.recommend import top_k_batches
from gnnrec.train.training_data import seen_items

if TYPE_CHECKING:
    import pyarrow as pa

    from gnnrec.serve.item_index import IndexConfig

BATCH_USERS = 8192  # users ranked a batch
log = get_logger(__name__)
RECOMMENDATION_COLUMNS = ("user_id", "rank", "item_id", "title", "score")
TABLE_FORMATS = (".csv", ".parquet")


def embeddings(prepared: Prepared, model: Recommender, config: RunConfig) -> torch.Tensor:
    """The model's final embeddings ``[U + I, H]`` (in chunks when ``eval.chunk_nodes``)."""
    return node_embeddings(model, prepared.data, chunk_nodes=config.eval.chunk_nodes)


def check_recommendations_target(path: str | Path) -> None:
    """``ValueError`` naming ``path`` unless a recommendation table may be written there: a
    ``.csv`` or ``.parquet`` name (the format follows it) that is free or holds an earlier
    recommendation table (its columns are :data:`RECOMMENDATION_COLUMNS`)."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_FORMATS:
        raise ValueError(
            f"{path}: recommendations are written as .csv or .parquet, chosen by the name's "
            "suffix; give a name ending in one of them"
        )
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name ending in .csv or .parquet")
    if path.exists() and _table_columns(path) != RECOMMENDATION_COLUMNS:
        raise ValueError(
            f"{path}: exists and is not a gnnrec recommendation table, so writing there would "
            "replace it; give a new name, or remove it yourself"
        )


def _table_columns(path: Path) -> tuple[str, ...]:
    """The column names of a CSV or Parquet file (empty when it is neither)."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return tuple(pq.read_schema(path).names)
        with open(path, encoding="utf-8") as f:
            header = f.readline().strip()
        return tuple(name.strip('"') for name in header.split(","))
    except (OSError, UnicodeDecodeError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return ()


def write_recommendations(
    prepared: Prepared,
    model: Recommender,
    config: RunConfig,
    path: str | Path,
    z: torch.Tensor | None = None,
    users: list[str] | None = None,
) -> int:
    """Top-K items per user (the ids ``users`` in that order, else every user or the seeded
    sample ``eval.recommend_users``, in id order) with training positives excluded: CSV or
    Parquet by suffix (``z``: the final embeddings, when already computed). Columns ``user_id,
    rank, item_id, title, score``; written a batch of users at a time from the top-K tensors
    (Arrow takes, no row loop), to a temporary name renamed at the end. Returns the number of
    users written."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data, graph = prepared.data, prepared.graph
    user_ids, item_ids = arrow_strings(graph.users.ids), arrow_strings(graph.items.ids)
    titles = arrow_strings(graph.items.text_fields.get("title", graph.items.ids))
    path = Path(path)
    check_recommendations_target(path)
    rows = _recommended_users(user_ids, data.num_users, config, users)
    exclude = data.train[:2]
    if len(rows) < data.num_users or users is not None:
        position = np.full(data.num_users, -1)
        position[rows] = np.arange(len(rows))
        mine = position[exclude[0]] >= 0
        exclude = (position[exclude[0][mine]], exclude[1][mine])
    z = embeddings(prepared, model, config) if z is None else z
    users = rows
    batches = top_k_batches(
        z[torch.as_tensor(users)],
        z[data.num_users :],
        config.eval.top_k,
        exclude=exclude,
        batch_size=BATCH_USERS,
        score=model.scores,
    )
    log.info(
        "recommending the top %d items to %d users into %s", config.eval.top_k, len(rows), path
    )
    shown = tqdm(
        batches,
        total=-(-len(rows) // BATCH_USERS),
        desc="recommend",
        unit="batch",
        disable=None,  # a bar on a terminal, nothing in a log
        mininterval=1.0,
    )
    with atomic_path(path) as tmp, _table_writer(tmp, path.suffix.lower()) as write:
        for start, items, scores in shown:
            count, k = items.shape
            # a user with fewer than k unseen items: the seen ones came last at -inf; drop them
            kept = (scores != -torch.inf).reshape(-1).numpy()
            flat = pa.array(items.reshape(-1).numpy()[kept])
            user_rows = np.repeat(users[start : start + count], k)[kept]
            write(
                pa.table(
                    {
                        "user_id": pc.take(user_ids, pa.array(user_rows)),
                        "rank": pa.array(np.tile(np.arange(1, k + 1), count)[kept]),
                        "item_id": pc.take(item_ids, flat),
                        "title": pc.take(titles, flat),
                        "score": pa.array(np.round(scores.reshape(-1).double().numpy()[kept], 6)),
                    }
                )
            )
    return len(rows)


def _recommended_users(
    user_ids: pa.Array, num_users: int, config: RunConfig, chosen: list[str] | None
) -> np.ndarray:
    """Rows of the users to recommend for: ``chosen`` ids (each once, in order; an unknown id
    is an error naming it), else the seeded sample ``eval.recommend_users``, else all."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if chosen is not None:
        chosen = list(dict.fromkeys(chosen))
        found = pc.index_in(pa.array(chosen, pa.string()), value_set=user_ids)
        if found.null_count:
            unknown = [u for u, bad in zip(chosen, found.is_null().to_pylist()) if bad][:5]
            raise ValueError(f"unknown user id(s) {unknown}")
        return np.asarray(found.to_pylist(), dtype=np.int64)
    if 0 < config.eval.recommend_users < num_users:
        rng = np.random.default_rng(config.eval.test_user_seed)
        return np.sort(rng.choice(num_users, config.eval.recommend_users, replace=False))
    return np.arange(num_users)


@contextlib.contextmanager
def _table_writer(path: Path, suffix: str) -> Iterator[Callable]:
    """A function that appends Arrow tables to ``path``: Parquet for ``.parquet``, CSV for
    ``.csv`` (one header, strings quoted)."""
    writer = None

    def write(table):
        nonlocal writer
        if writer is None:
            if suffix == ".parquet":
                import pyarrow.parquet as pq

                writer = pq.ParquetWriter(path, table.schema)
            else:
                import pyarrow.csv as pacsv

                writer = pacsv.CSVWriter(path, table.schema)
        writer.write_table(table)

    try:
        yield write
    finally:
        if writer is not None:
            writer.close()


def write_export(
    prepared: Prepared,
    model: Recommender,
    config: RunConfig,
    output: str | Path,
    index: IndexConfig | None = None,
    num_workers: int = 0,
) -> Path:
    """Writes the run's final embeddings for serving into the folder ``output`` (replacing only
    an earlier export): ``user_embeddings.npy`` ``[U, H]``, ``item_embeddings.npy`` ``[I, H]``
    (float32; score = dot product), ``user_ids.parquet`` and ``item_ids.parquet`` (column
    ``id``, in row order), each user's seen items (``seen_indptr.npy`` ``[U + 1]`` and
    ``seen_items.npy``, item rows: a consumer ranking by these embeddings masks them), with
    ``index`` a faiss index of the item embeddings (``items.faiss``,
    :mod:`gnnrec.serve.item_index`), and ``export.json`` (model, dims, dataset, the index and the
    run's provenance: whoever loads the export can tell which run, settings and data it
    holds). ``num_workers``: the user side is written instead as Parquet parts by that many Ray
    Data workers (:mod:`gnnrec.serve.batch_export`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    z = embeddings(prepared, model, config).cpu().numpy().astype(np.float32)
    U = prepared.data.num_users
    output = Path(output)
    log.info("exporting %d user and %d item embeddings to %s", U, prepared.data.num_items, output)
    with staged_folder(output, "export") as tmp:
        if num_workers:
            from gnnrec.serve.batch_export import USER_PARTS, write_user_parts

            address = config.parallel.address
            users = write_user_parts(
                prepared, torch.from_numpy(z), tmp / USER_PARTS, num_workers, address
            )
            seen_meta = "each part's seen column: the user's training item rows"
        else:
            np.save(tmp / "user_embeddings.npy", z[:U])
            ids = prepared.graph.users.ids
            pq.write_table(pa.table({"id": arrow_strings(ids)}), tmp / "user_ids.parquet")
            indptr, seen = seen_items(*prepared.data.train[:2], U)
            np.save(tmp / "seen_indptr.npy", indptr)
            np.save(tmp / "seen_items.npy", seen)
            users = "user_embeddings.npy and user_ids.parquet (column id), in row order"
            seen_meta = "seen_items[seen_indptr[u]:seen_indptr[u + 1]]: user row u's training items"
        np.save(tmp / "item_embeddings.npy", z[U:])
        item_ids = prepared.graph.items.ids
        pq.write_table(pa.table({"id": arrow_strings(item_ids)}), tmp / "item_ids.parquet")
        index_meta = None
        if index is not None:
            from gnnrec.serve.item_index import ItemIndex

            log.info("building a %s index of the %d item embeddings", index.kind, len(z) - U)
            index_meta = ItemIndex(z[U:], index).save(tmp)
        meta = {
            "model": config.model.name,
            "model_label": model.label,
            "dataset": prepared.graph.name,
            "num_users": U,
            "num_items": prepared.data.num_items,
            "dim": int(z.shape[1]),
            "score": "dot product of a user row and an item row",
            "users": users,
            "seen": seen_meta,
            "index": index_meta,
            PROVENANCE: run_provenance(config, data_fingerprint(prepared)),
        }
        (tmp / "export.json").write_text(json.dumps(meta, indent=2))
    return output
