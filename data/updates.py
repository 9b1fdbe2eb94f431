"""Interactions that arrived after a run trained (``gnnrec update``): read from a table, mapped
onto the run's users and items (ids it has not seen appended as new rows) and appended to its
training interactions.

An update table has the columns ``user_id`` and ``item_id`` and optionally ``rating`` (1.0 when
absent) and ``timestamp`` (0); CSV, TSV, Parquet, a file or a folder of parts, read like the
``table`` dataset (:func:`~gnnrec.data.tabular.load_table`). Tables of ``user_id`` / ``item_id``
and text columns named as the run's text fields give new users and items their text (a text
model refuses new items without). Each version keeps its update as a folder
(:meth:`Update.write`), which ``data.updates`` lists. A pair the run already holds (in
training, validation or test) or that repeats within the update is kept once (the earlier one;
an update never moves a held-out pair into training).

Node order after an update: the old users, the new users, then the old items and the new items
(item-local ids of old items are unchanged; as nodes, items shift by the new users' count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gnnrec.common.log import get_logger
from gnnrec.data.columns import TextColumn, arrow_strings, as_numpy
from gnnrec.data.config import DataConfig
from gnnrec.data.datasets import load_dataset
from gnnrec.data.edge_weights import EdgeWeight
from gnnrec.data.errors import DataError
from gnnrec.data.splits import Split
from gnnrec.data.table_rows import ColumnMapping, table_files
from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph

OPTIONAL_COLUMNS = ("rating", "timestamp")
log = get_logger(__name__)


@dataclass
class UpdateCounts:
    """What one update added: new users and items, interactions appended, and pairs dropped
    because the run (or the update itself) already had them."""

    new_users: int
    new_items: int
    added: int
    repeated: int

    def line(self) -> str:
        return (
            f"{self.added} interactions added ({self.repeated} already known, skipped), "
            f"{self.new_users} new users, {self.new_items} new items"
        )


def _header(path: Path) -> list[str]:
    """The column names of a table file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path).names
    with path.open(encoding="utf-8", errors="replace") as f:
        line = f.readline().rstrip("\r\n")
    return [c.strip().strip('"') for c in line.split("\t" if path.suffix == ".tsv" else ",")]


def read_interactions(path: str | Path) -> TextGraph:
    """The update table of interactions at ``path`` as a graph of its own (its ids in order of
    appearance)."""
    from gnnrec.data.tabular import load_table

    path = Path(path)
    columns = _header(table_files(path)[0])
    missing = [c for c in ("user_id", "item_id") if c not in columns]
    if missing:
        raise DataError(
            f"an update table needs the columns user_id and item_id (optional: rating, "
            f"timestamp); missing {missing}, found {columns}",
            path,
        )
    present = {c: c if c in columns else None for c in OPTIONAL_COLUMNS}
    mapping = ColumnMapping(rating=present["rating"], timestamp=present["timestamp"])
    return load_table(path, mapping=mapping)


def read_node_text(path: str | Path, kind: str) -> NodeTable:
    """A table of ``<kind>_id`` and text columns (e.g. ``title``, ``genres``): the text of new
    users or items."""
    from gnnrec.data.tabular import read_node_table

    path = Path(path)
    columns = _header(table_files(path)[0])
    id_col = f"{kind}_id"
    if id_col not in columns:
        article = "an" if kind[0] in "aeiou" else "a"
        raise DataError(f"{article} {kind} table needs the column {id_col}; found {columns}", path)
    return read_node_table(path, id_col, [c for c in columns if c != id_col])


@dataclass
class Update:
    """One update: its interactions, and the text of its new users and items (or None)."""

    interactions: TextGraph
    users: NodeTable | None = None
    items: NodeTable | None = None

    def write(self, folder: Path) -> None:
        """``folder/interactions.parquet`` (``user_id``, ``item_id``, ``rating``,
        ``timestamp``) and ``users.parquet`` / ``items.parquet`` when given: what
        :func:`read_update` reads back."""
        import pyarrow.parquet as pq

        update = self.interactions
        inter = update.interactions
        columns = {
            "user_id": pc.take(arrow_strings(update.users.ids).cast(pa.string()), inter.user),
            "item_id": pc.take(arrow_strings(update.items.ids).cast(pa.string()), inter.item),
            "rating": pa.array(inter.rating),
            "timestamp": pa.array(inter.timestamp),
        }
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), folder / "interactions.parquet")
        for kind, nodes in (("user", self.users), ("item", self.items)):
            if nodes is not None:
                table = {f"{kind}_id": arrow_strings(nodes.ids).cast(pa.string())}
                table |= {
                    k: arrow_strings(v).cast(pa.string()) for k, v in nodes.text_fields.items()
                }
                pq.write_table(pa.table(table), folder / f"{kind}s.parquet")


def read_update(folder: str | Path) -> Update:
    """The update written into ``folder`` by :meth:`Update.write`."""
    folder = Path(folder)
    nodes = {
        kind: read_node_text(folder / f"{kind}s.parquet", kind)
        if (folder / f"{kind}s.parquet").is_file()
        else None
        for kind in ("user", "item")
    }
    return Update(read_interactions(folder / "interactions.parquet"), nodes["user"], nodes["item"])


def _grown(nodes: NodeTable, new_ids: pa.Array, text: NodeTable | None, kind: str) -> NodeTable:
    """``nodes`` with ``new_ids`` appended, their text fields from ``text`` where it has them
    (else empty); a field ``text`` has that ``nodes`` does not is an error."""
    if len(new_ids) == 0:
        return nodes
    given = {}
    if text is not None:
        unknown = sorted(set(text.text_fields) - set(nodes.text_fields))
        if unknown:
            raise ValueError(
                f"the {kind} text table has columns {unknown} that are no {kind} text field of "
                f"the run (its fields: {sorted(nodes.text_fields)})"
            )
        at = pc.index_in(new_ids, value_set=arrow_strings(text.ids).cast(pa.string()))
        given = {
            name: pc.take(arrow_strings(values).cast(pa.string()), at).fill_null("")
            for name, values in text.text_fields.items()
        }
    blank = pa.array([""] * len(new_ids), pa.string())
    ids = pa.concat_arrays([arrow_strings(nodes.ids).cast(pa.string()), new_ids])
    fields = {
        name: TextColumn(
            pa.concat_arrays([arrow_strings(values).cast(pa.string()), given.get(name, blank)])
        )
        for name, values in nodes.text_fields.items()
    }
    return NodeTable(TextColumn(ids), fields)


def _rows(known: Sequence[str], ids: Sequence[str]) -> tuple[np.ndarray, pa.Array]:
    """Each of ``ids``' row among ``known`` plus the distinct unknown ones appended after them
    (in order of first appearance): ``([n] rows, new ids)``."""
    known_arrow = arrow_strings(known).cast(pa.string())
    ids_arrow = arrow_strings(ids).cast(pa.string())
    rows = as_numpy(pc.index_in(ids_arrow, value_set=known_arrow).fill_null(-1)).astype(np.int64)
    unknown = rows < 0
    new_ids = pc.unique(ids_arrow.filter(pa.array(unknown)))
    if len(new_ids):
        extra = as_numpy(pc.index_in(ids_arrow, value_set=new_ids).fill_null(-1))
        rows[unknown] = len(known_arrow) + extra[unknown]
    return rows, new_ids


def load_updated(cfg: DataConfig) -> tuple[TextGraph, Split]:
    """:func:`~gnnrec.data.datasets.load_dataset` with ``cfg.updates`` applied in order."""
    graph, split = load_dataset(cfg)
    for update in cfg.updates:
        counts = apply_update(graph, split, read_update(update), cfg.edge_weight_spec)
        log.info("%s: %s", update, counts.line())
    return graph, split


def apply_update(
    graph: TextGraph, split: Split, change: Update, edge_weight: EdgeWeight | None = None
) -> UpdateCounts:
    """Appends ``change``'s interactions to ``graph`` (in place: new users and items grown, with
    their text where ``change`` has it; known nodes keep theirs) and to ``split.train``; returns
    what it added. Under ``edge_weight = count`` each added pair counts once; a weight column
    is not read from update tables (refused)."""
    edge_weight = edge_weight or EdgeWeight()
    if edge_weight.column is not None:
        raise DataError(
            f"the run weighs its edges by column {edge_weight.column!r} (data.edge_weight), "
            "which update tables do not carry: retrain with the new rows in the table",
            graph.name,
        )
    update = change.interactions
    inter = update.interactions
    user_rows, new_users = _rows(graph.users.ids, update.users.ids)
    item_rows, new_items = _rows(graph.items.ids, update.items.ids)
    users, items = user_rows[inter.user], item_rows[inter.item]
    num_items = graph.num_items + len(new_items)
    old = graph.interactions
    old_keys = np.unique(old.user * num_items + old.item)
    keys = users * num_items + items
    _, first = np.unique(keys, return_index=True)
    keep = np.zeros(len(keys), dtype=bool)
    keep[first] = True
    keep &= ~np.isin(keys, old_keys)
    weight = None if graph.interactions.weight is None else np.ones(int(keep.sum()), np.float32)
    added = Interactions(
        users[keep], items[keep], inter.rating[keep], inter.timestamp[keep], weight
    )
    start = len(old)
    graph.users = _grown(graph.users, new_users, change.users, "user")
    graph.items = _grown(graph.items, new_items, change.items, "item")
    graph.interactions = Interactions.concat([old, added])
    split.train = np.concatenate([split.train, np.arange(start, start + len(added))])
    graph.validate()
    return UpdateCounts(len(new_users), len(new_items), len(added), int((~keep).sum()))
