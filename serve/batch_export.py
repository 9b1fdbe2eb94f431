"""The user side of an export as a Ray Data job (``gnnrec export --num-workers N``).

The driver computes the final embeddings once; ``N`` actors each write the blocks of users they
are given as Parquet parts (``users/part-BBBBB.parquet``: ``user_id``, ``embedding`` (float32,
``[H]``), ``seen`` (the user's training item rows)), blocks in user row order. The item side
(``item_embeddings.npy``, ``item_ids.parquet``, an index) is written by the driver as in a
one-process export (:func:`gnnrec.outputs.write_export`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gnnrec.pipeline import Prepared
from gnnrec.serve.batch_recommend import run_blocks, user_blocks

USER_PARTS = "users"  # the folder of the parts, in the export


class BlockWriter:
    """A Ray Data actor: writes each block of users given as one part into ``folder``."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def __call__(self, batch):
        import pyarrow as pa
        import pyarrow.parquet as pq

        block = int(batch.column("block")[0].as_py())
        part = batch.select(["user_id", "z", "seen"]).rename_columns(
            ["user_id", "embedding", "seen"]
        )
        pq.write_table(part, self.folder / f"part-{block:05d}.parquet")
        return pa.table({"block": [block], "users": [batch.num_rows]})


def write_user_parts(
    prepared: Prepared, z: torch.Tensor, folder: Path, num_workers: int, address: str
) -> str:
    """Writes every user's row of ``z`` ``[U + I, H]`` and seen items as Parquet parts into
    ``folder`` on ``num_workers`` Ray Data actors (the cluster at ``address``, or a private
    local one); returns what the parts hold, in words (for ``export.json``)."""
    from gnnrec.common.ray_cluster import connect

    connect(address, log_to_driver=False)
    folder.mkdir()
    blocks = user_blocks(prepared, z.detach().cpu().float(), num_workers)
    run_blocks(blocks, BlockWriter, {"folder": str(folder)}, num_workers, "export")
    return (
        f"{USER_PARTS}/part-BBBBB.parquet in user row order: user_id, embedding (float32), seen "
        "(the user's training item rows)"
    )
