"""Recommendations for every user as a Ray Data job (``gnnrec recommend --num-workers N``).

The driver computes the final embeddings once and makes a dataset of the users in blocks: each
row a user's id, final embedding and seen items. ``N`` actors each hold the item side (the item
embeddings, ids and titles, and the model's scoring) and rank the blocks they are given, never
the other users' rows, each block written by its actor as one Parquet part
(``part-BBBBB.parquet``: ``user_id, rank, item_id, title, score``, the columns of
:func:`gnnrec.outputs.write_recommendations`) into a folder that replaces only an earlier
folder of recommendations. The actors write their own parts, so no task waits for a CPU the
actors hold. One process (``write_recommendations``) stays the default. The blocks and the
actor pool (:func:`user_blocks`, :func:`run_blocks`) also write the user side of an export
(:mod:`gnnrec.serve.batch_export`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gnnrec.common.atomic_files import staged_folder
from gnnrec.common.log import get_logger
from gnnrec.config import RunConfig
from gnnrec.data.columns import arrow_strings
from gnnrec.models.recommender import Recommender
from gnnrec.pipeline import Prepared
from gnnrec.train.recommend import dot_scores, top_k_items
from gnnrec.train.training_data import seen_items

log = get_logger(__name__)
BLOCK_USERS = 8192  # users a block (and an actor's batch)
OUTPUT_KIND = "recommendations"


class BlockRanker:
    """A Ray Data actor: the item side, then the top ``k`` of each block of users given."""

    def __init__(self, item_side_ref: list, k: int, folder: str):
        import ray

        torch.set_num_threads(
            max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        )
        side = ray.get(item_side_ref[0])
        with warnings.catch_warnings():  # read only: the object store's array, not a copy
            warnings.simplefilter("ignore", UserWarning)
            self.items = torch.from_numpy(np.asarray(side["z"]))
        self.item_ids, self.titles, self.model = side["ids"], side["titles"], side["model"]
        self.k, self.folder = k, Path(folder)

    def __call__(self, batch):
        """Ranks one block and writes its part; returns ``{"block", "users"}``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        block = int(batch.column("block")[0].as_py())
        pq.write_table(self.ranked(batch), self.folder / f"part-{block:05d}.parquet")
        return pa.table({"block": [block], "users": [batch.num_rows]})

    def ranked(self, batch):
        """The rows of a block's users' top ``k``."""
        import pyarrow as pa
        import pyarrow.compute as pc

        count = batch.num_rows
        z = batch.column("z").combine_chunks()
        users = torch.from_numpy(z.values.to_numpy(zero_copy_only=False)).view(count, -1)
        seen = batch.column("seen").combine_chunks()
        lengths = np.diff(seen.offsets.to_numpy())
        exclude = (np.repeat(np.arange(count), lengths), seen.values.to_numpy())
        score = dot_scores if self.model is None else self.model.scores
        items, scores = top_k_items(users, self.items, self.k, exclude=exclude, score=score)
        k = items.shape[1]
        kept = (scores != -torch.inf).reshape(-1).numpy()  # fewer unseen items than k: drop
        flat = pa.array(items.reshape(-1).numpy()[kept])
        rows = pa.array(np.repeat(np.arange(count), k)[kept])
        return pa.table(
            {
                "user_id": pc.take(batch.column("user_id"), rows),
                "rank": pa.array(np.tile(np.arange(1, k + 1), count)[kept]),
                "item_id": pc.take(self.item_ids, flat),
                "title": pc.take(self.titles, flat),
                "score": pa.array(np.round(scores.reshape(-1).double().numpy()[kept], 6)),
            }
        )


def user_blocks(prepared: Prepared, z: torch.Tensor, num_workers: int) -> list:
    """Every user as Arrow tables of at most :data:`BLOCK_USERS` rows (at least one block per
    worker): ``user_id``, final embedding ``z`` (float32 list), ``seen`` (training item rows)
    and the block's number ``block``."""
    import pyarrow as pa

    data, graph = prepared.data, prepared.graph
    U = data.num_users
    indptr, seen = seen_items(*data.train[:2], U)
    users = pa.table(
        {
            "user_id": arrow_strings(graph.users.ids),
            "z": pa.FixedSizeListArray.from_arrays(pa.array(z[:U].numpy().reshape(-1)), z.shape[1]),
            "seen": pa.LargeListArray.from_arrays(pa.array(indptr), pa.array(seen)),
        }
    )
    size = max(1, min(BLOCK_USERS, -(-U // num_workers)))
    return [
        users.slice(start, size).append_column("block", pa.array([n] * min(size, U - start)))
        for n, start in enumerate(range(0, U, size))
    ]


def run_blocks(blocks: list, actor: type, kwargs: dict, num_workers: int, stage: str) -> None:
    """Runs ``actor`` (built with ``kwargs``; called on each block, it writes the block's part
    and returns ``{"block", "users"}``) over ``blocks`` on ``num_workers`` Ray Data actors of
    one CPU each, showing the users done."""
    import ray

    done = ray.data.from_arrow(blocks).map_batches(
        actor,
        batch_format="pyarrow",
        batch_size=None,  # a block at a time
        num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=min(num_workers, len(blocks))),
        fn_constructor_kwargs=kwargs,
    )
    total = sum(block.num_rows for block in blocks)
    shown = tqdm(total=total, desc=stage, unit="user", disable=None, mininterval=1.0)
    for row in done.iter_rows():
        shown.update(row["users"])
    shown.close()


def recommend_on_ray(
    prepared: Prepared,
    model: Recommender,
    config: RunConfig,
    output: str | Path,
    num_workers: int,
    z: torch.Tensor | None = None,
) -> int:
    """Writes the top ``eval.top_k`` items of every user (training items excluded) as Parquet
    parts into the folder ``output`` with ``num_workers`` Ray Data actors (on
    ``parallel.address``, or a private local Ray instance); returns the number of users."""
    import ray

    from gnnrec.common.ray_cluster import connect
    from gnnrec.outputs import embeddings

    graph, U = prepared.graph, prepared.data.num_users
    z = (embeddings(prepared, model, config) if z is None else z).detach().cpu().float()
    item_side = {
        "z": z[U:].numpy(),
        "ids": arrow_strings(graph.items.ids),
        "titles": arrow_strings(graph.items.text_fields.get("title", graph.items.ids)),
        "model": None if model.scores_are_dot_products else model.cpu(),
    }
    connect(config.parallel.address, log_to_driver=False)
    blocks = user_blocks(prepared, z, num_workers)
    log.info(
        "recommending the top %d items to %d users on %d Ray Data workers into %s",
        config.eval.top_k,
        U,
        num_workers,
        output,
    )
    with staged_folder(Path(output), OUTPUT_KIND) as tmp:
        kwargs = {"item_side_ref": [ray.put(item_side)], "k": config.eval.top_k, "folder": str(tmp)}
        run_blocks(blocks, BlockRanker, kwargs, num_workers, "recommend")
    return U
