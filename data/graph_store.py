"""Graph storage: CSR and CSC with int64 ``indptr`` and int32 indices, saved as memory-mapped
``.npy`` files with a JSON manifest, and converted to and from PyG ``Data``/``HeteroData``.

Convention: row ``i`` of the CSR lists the nodes ``j`` whose messages flow into ``i``
(``out[i] = sum_j A[i, j] x[j]``); PyG's ``edge_index`` is ``[source j; target i]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gnnrec.common.atomic_files import read_json, staged_folder
from gnnrec.data.errors import DataError
from gnnrec.data.hetero import NUM_RELATIONS, GraphSchema, base_relations
from gnnrec.data.textgraph import RelationEdges
from gnnrec.kernels.csr import edge_rows, gcn_scales, row_sums, same_structure, transpose_csr

FORMAT_VERSION = 1
EDGE_FIELDS = ("values", "relation")  # optional per-edge arrays of a CSR
INDEX_DTYPE_LIMIT = 2**31


@dataclass
class CSR:
    """Compressed rows: ``indptr`` int64 ``[R + 1]``, ``indices`` int32 (int64 past 2^31)
    ``[E]``, sorted by row then column; ``values`` float32 ``[E]``: the edges' weights (None:
    every edge weighs 1); ``relation`` int8 ``[E]``: each edge's relation (None: one relation;
    see :mod:`gnnrec.data.hetero`)."""

    indptr: torch.Tensor
    indices: torch.Tensor
    num_cols: int
    values: torch.Tensor | None = None
    relation: torch.Tensor | None = None

    def edge_fields(
        self, fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> dict[str, torch.Tensor | None]:
        """``fn`` of each per-edge array this CSR has (:data:`EDGE_FIELDS`), None for the
        others: what a CSR made of some of these edges carries, e.g.
        ``CSR(indptr, indices, n, **csr.edge_fields(lambda t: t[kept]))``."""
        return {
            name: None if getattr(self, name) is None else fn(getattr(self, name))
            for name in EDGE_FIELDS
        }

    @property
    def num_rows(self) -> int:
        return self.indptr.numel() - 1

    @property
    def num_edges(self) -> int:
        return self.indices.numel()

    def degree(self) -> torch.Tensor:
        return self.indptr[1:] - self.indptr[:-1]

    def row_sums(self) -> torch.Tensor:
        """Each row's weighted degree ``sum_j w_ij`` ``[R]`` float64 (needs ``values``)."""
        return row_sums(self.indptr, self.values)

    def weighted_degree(self) -> torch.Tensor:
        """Each row's degree ``[R]``: its weight sum over a weighted CSR, else its edges."""
        return self.degree() if self.values is None else self.row_sums()

    def by_relation(self, count: int) -> list[tuple[CSR, torch.Tensor]]:
        """``(csr_r, positions_r)`` of relations ``0..count-1`` (every edge relation 0
        without ``relation``): its edges as a CSR over the same rows and columns, in this
        CSR's order (with their per-edge fields), and each one's position here."""
        rows = self.row_ids()
        relation = torch.zeros_like(rows) if self.relation is None else self.relation.long()
        parts = []
        for r in range(count):
            at = torch.nonzero(relation == r).flatten()
            indptr = torch.zeros(self.num_rows + 1, dtype=torch.int64, device=rows.device)
            indptr[1:] = torch.cumsum(torch.bincount(rows[at], minlength=self.num_rows), 0)
            fields = self.edge_fields(lambda t, at=at: t[at])
            parts.append((CSR(indptr, self.indices[at], self.num_cols, **fields), at))
        return parts

    def row_ids(self) -> torch.Tensor:
        """Row of every edge, int64 ``[E]``."""
        return edge_rows(self.indptr)

    def to(self, device: torch.device | str) -> CSR:
        """This CSR on ``device`` (itself when already there)."""
        if self.indptr.device == torch.device(device):
            return self
        fields = self.edge_fields(lambda t: t.to(device))
        return CSR(self.indptr.to(device), self.indices.to(device), self.num_cols, **fields)

    def pin_memory(self) -> CSR:
        """A copy in page-locked host memory (fast, asynchronous host-to-GPU copies; a GPU reads
        it in place), from host or device memory."""

        def pinned(t: torch.Tensor) -> torch.Tensor:
            if t.device.type == "cpu":
                return t.pin_memory()
            return torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t)

        fields = self.edge_fields(pinned)
        return CSR(pinned(self.indptr), pinned(self.indices), self.num_cols, **fields)

    def rows_prefix(self, rows: int, cols: int | None = None) -> CSR:
        """The first ``rows`` rows (their edges a prefix of ``indices``), over ``cols``
        columns (default: all)."""
        indptr = self.indptr[: rows + 1]
        end = int(indptr[-1])
        fields = self.edge_fields(lambda t: t[:end])
        return CSR(indptr, self.indices[:end], self.num_cols if cols is None else cols, **fields)

    @staticmethod
    def from_edges(
        rows: torch.Tensor,
        cols: torch.Tensor,
        num_rows: int,
        num_cols: int,
        coalesce: bool = True,
        values: torch.Tensor | None = None,
    ) -> CSR:
        """CSR of the edges ``(rows[e], cols[e])`` with weights ``values[e]``; duplicates
        merged when ``coalesce`` (their weights summed)."""
        rows, cols = (
            torch.as_tensor(rows, dtype=torch.int64),
            torch.as_tensor(cols, dtype=torch.int64),
        )
        key = rows * num_cols + cols
        if values is None:
            key = torch.unique(key) if coalesce else torch.sort(key).values
        else:
            key, order = torch.sort(key, stable=True)
            values = torch.as_tensor(values, dtype=torch.float32)[order]
            if coalesce:
                key, inverse = torch.unique_consecutive(key, return_inverse=True)
                merged = torch.zeros(key.numel(), dtype=torch.float64, device=key.device)
                values = merged.index_add_(0, inverse, values.double()).float()
        rows, cols = key // num_cols, key % num_cols
        indptr = torch.zeros(num_rows + 1, dtype=torch.int64, device=rows.device)
        indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=num_rows), 0)
        dtype = torch.int32 if num_cols < INDEX_DTYPE_LIMIT else torch.int64
        return CSR(indptr, cols.to(dtype), num_cols, values)

    def contains(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Whether each ``(rows[k], cols[k])`` ``[K]`` is an edge: a vectorised binary search in
        each row's sorted columns, ``O(K log max_degree)`` time and no per-edge memory."""
        rows, cols = rows.long(), cols.long()
        lo, end = self.indptr[rows], self.indptr[rows + 1]
        hi = end.clone()
        last = max(self.num_edges - 1, 0)
        while True:  # first position in [lo, hi) whose column is >= cols
            active = lo < hi
            if not bool(active.any()):
                break
            mid = (lo + hi) // 2
            right = active & (self.indices[mid.clamp(max=last)].long() < cols)
            lo = torch.where(right, mid + 1, lo)
            hi = torch.where(active & ~right, mid, hi)
        if self.num_edges == 0:
            return torch.zeros(rows.shape, dtype=torch.bool, device=rows.device)
        return (lo < end) & (self.indices[lo.clamp(max=last)].long() == cols)

    def transpose(self) -> CSR:
        """``A^T`` (rows sorted by column, as :meth:`from_edges` would sort them)."""
        indptr, rows, perm = transpose_csr(self.indptr, self.indices, self.num_cols)
        dtype = torch.int32 if self.num_rows < INDEX_DTYPE_LIMIT else torch.int64
        return CSR(indptr, rows.to(dtype), self.num_rows, **self.edge_fields(lambda t: t[perm]))


KEY_CHUNK = 1 << 24  # keys turned into columns at a time (bounds the int64 temporaries)

# (targets [E], their offset, sources [E], their offset): the directed edges of one edge list
EdgePart = tuple[np.ndarray, int, np.ndarray, int]


def edge_keys(parts: Sequence[EdgePart], num_cols: int) -> np.ndarray:
    """``(target + offset) * num_cols + source + offset`` of every edge of ``parts``, int64,
    written in place (no temporaries of the edge lists)."""
    key = np.empty(sum(len(target) for target, *_ in parts), dtype=np.int64)
    start = 0
    for target, target_offset, source, source_offset in parts:
        part = key[start : start + len(target)]
        np.add(target, target_offset, out=part)
        part *= num_cols
        part += source
        part += source_offset
        start += len(target)
    return key


def csr_of_key_blocks(
    blocks: Iterable[tuple[np.ndarray, np.ndarray | None]],
    num_edges: int,
    num_rows: int,
    num_cols: int,
    weighted: bool = False,
) -> CSR:
    """The CSR of the edges ``key = row * num_cols + col`` (int64), duplicates merged, on the
    host. The keys come in blocks of rows (every key of a block below every key of the next,
    e.g. the users' rows, then the items'), each with its edges' weights (float32, or None
    when not ``weighted``; a merged edge weighs the sum of its copies). Each block is sorted
    in place (consumed), so the build holds one block, a bool per key of it and the ``[E']``
    indices (``E' <= num_edges``, the blocks' total), never rows and columns whole; weights
    add a sort order (8 bytes a key of the block) and the ``[E']`` values."""
    dtype = np.int32 if num_cols < INDEX_DTYPE_LIMIT else np.int64
    indices = np.empty(num_edges, dtype=dtype)
    values = np.empty(num_edges, dtype=np.float32) if weighted else None
    counts = np.zeros(num_rows, dtype=np.int64)
    done = 0
    for key, weight in blocks:
        if weighted:
            order = np.argsort(key, kind="stable")
            key, weight = key[order], weight[order]
            del order
        else:
            key.sort()
        first = np.empty(len(key), dtype=bool)  # first of its run of equal keys
        first[:1] = True
        np.not_equal(key[1:], key[:-1], out=first[1:])
        if weighted and len(key):
            starts = np.flatnonzero(first)
            values[done : done + len(starts)] = np.add.reduceat(weight.astype(np.float64), starts)
        for start in range(0, len(key), KEY_CHUNK):
            kept = key[start : start + KEY_CHUNK][first[start : start + KEY_CHUNK]]
            counts += np.bincount(kept // num_cols, minlength=num_rows)
            indices[done : done + len(kept)] = kept % num_cols
            done += len(kept)
        del key, first, weight  # before the next block is made
    if done < num_edges:  # duplicates were merged
        indices = indices[:done].copy()
        values = None if values is None else values[:done].copy()
    indptr = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return CSR(
        torch.from_numpy(indptr),
        torch.from_numpy(indices),
        num_cols,
        None if values is None else torch.from_numpy(values),
    )


@dataclass
class GraphStore:
    """A graph's CSR (rows are message targets) and CSC, plus the node-type layout: users,
    items, then the entity types of ``schema`` (whose relations' edges carry their ids in
    ``csr.relation``)."""

    csr: CSR
    csc: CSR
    symmetric: bool
    num_users: int = 0
    num_items: int = 0
    schema: GraphSchema = GraphSchema()

    @property
    def num_nodes(self) -> int:
        return self.csr.num_rows

    @property
    def num_edges(self) -> int:
        return self.csr.num_edges

    def gcn_scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D_r^-1/2, D_c^-1/2)`` float32 (see :func:`gnnrec.kernels.csr.gcn_scales`)."""
        return gcn_scales(self.csr.indptr, self.csr.indices, self.csr.num_cols, self.csr.values)

    @property
    def weighted(self) -> bool:
        """Whether the edges carry weights (``csr.values``)."""
        return self.csr.values is not None

    @staticmethod
    def from_csr(csr: CSR, num_users: int = 0, num_items: int = 0) -> GraphStore:
        csc = csr.transpose()
        symmetric = csr.num_rows == csr.num_cols and same_structure(
            csr.indptr, csr.indices, csc.indptr, csc.indices
        )
        return GraphStore(csr, csr if symmetric else csc, symmetric, num_users, num_items)

    @staticmethod
    def bipartite(
        user: np.ndarray,
        item: np.ndarray,
        num_users: int,
        num_items: int,
        user_edges: np.ndarray | None = None,
        item_edges: np.ndarray | None = None,
        weight: np.ndarray | None = None,
        user_edge_weight: np.ndarray | None = None,
        item_edge_weight: np.ndarray | None = None,
        schema: GraphSchema | None = None,
        relation_edges: Sequence[RelationEdges] = (),
    ) -> GraphStore:
        """The symmetric user–item graph: users ``0..U-1``, items ``U..U+I-1``, both directions,
        duplicates merged; optional ``[2, E']`` user–user and item–item edges join it (both
        directions too, a pair listed twice or both ways once). ``weight`` ``[E]``: each
        interaction's weight (both directions carry it; a merged interaction weighs the sum of
        its copies); ``user_edge_weight`` / ``item_edge_weight`` ``[E']``: the same-type
        edges' (a pair listed twice or both ways weighs its largest); any of them makes the
        graph weighted (the CSR's ``values``; what is not given weighs 1).

        Built on the host from one int64 key ``target * N + source`` per directed edge, the
        users' rows, then the items' (:func:`csr_of_key_blocks`): about 5 bytes a directed edge
        at the peak beside the result, no edge list copies (weights: 12 more a key of a
        block).

        ``schema`` with entity types and ``relation_edges`` (its relations' edges): the
        entities follow the items and every edge carries its relation (:func:`typed_csr`)."""
        n = num_users + num_items
        user, item = np.asarray(user), np.asarray(item)
        user_rows: list[EdgePart] = [(user, 0, item, num_users)]
        item_rows: list[EdgePart] = [(item, num_users, user, 0)]
        weighted = any(w is not None for w in (weight, user_edge_weight, item_edge_weight))
        interactions = (
            np.ones(len(user), np.float32) if weight is None else np.asarray(weight, np.float32)
        )
        row_weights = [[interactions], [interactions]]  # of user_rows' parts, item_rows'
        for edges, edge_weight, offset, rows, own, count in (
            (user_edges, user_edge_weight, 0, user_rows, row_weights[0], num_users),
            (item_edges, item_edge_weight, num_users, item_rows, row_weights[1], num_items),
        ):
            if edges is not None:
                source, target, links = _both_directions(np.asarray(edges), count, edge_weight)
                rows.append((target, offset, source, offset))
                own.append(links)

        blocks = (
            (edge_keys(rows, n), np.concatenate(own) if weighted else None)
            for rows, own in zip((user_rows, item_rows), row_weights)
        )
        total = sum(len(target) for target, *_ in user_rows + item_rows)
        csr = csr_of_key_blocks(blocks, total, n, n, weighted=weighted)
        schema = schema or GraphSchema()
        if schema.entity_types or schema.relations:
            csr = typed_csr(csr, num_users, num_items, schema, relation_edges)
        return GraphStore(csr, csr, True, num_users, num_items, schema)

    def save(self, folder: str | Path) -> Path:
        """Writes ``.npy`` arrays and ``manifest.json`` into a temporary folder, then renames it."""
        arrays = {"csr_indptr": self.csr.indptr, "csr_indices": self.csr.indices}
        arrays |= _present(self.csr.edge_fields(lambda t: t), "csr")
        if not self.symmetric:
            arrays.update(csc_indptr=self.csc.indptr, csc_indices=self.csc.indices)
            arrays |= _present(self.csc.edge_fields(lambda t: t), "csc")
        manifest = {
            "format_version": FORMAT_VERSION,
            "num_nodes": self.num_nodes,
            "num_edges": self.num_edges,
            "symmetric": self.symmetric,
            "num_users": self.num_users,
            "num_items": self.num_items,
            "schema": self.schema.to_json(),
            "arrays": {
                k: {
                    "file": f"{k}.npy",
                    "dtype": str(v.dtype).split(".")[-1],
                    "shape": list(v.shape),
                }
                for k, v in arrays.items()
            },
        }
        with staged_folder(folder, "graph store") as tmp:
            for name, tensor in arrays.items():
                np.save(tmp / f"{name}.npy", tensor.numpy())
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return Path(folder)

    @staticmethod
    def load(folder: str | Path) -> GraphStore:
        """Memory-maps a saved store (copy-on-write: nothing is read until it is touched)."""
        folder = Path(folder)
        manifest_file = folder / "manifest.json"
        if not manifest_file.is_file():
            raise DataError("no manifest.json: not a saved graph store", folder)
        manifest = read_json(manifest_file)
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"unsupported format_version {manifest.get('format_version')}", manifest_file
            )
        arrays = {}
        for name, meta in manifest["arrays"].items():
            array = np.load(folder / meta["file"], mmap_mode="c")
            if list(array.shape) != meta["shape"] or str(array.dtype) != meta["dtype"]:
                raise DataError(
                    f"{meta['file']} has shape {list(array.shape)} and dtype "
                    f"{array.dtype}, the manifest says {meta['shape']} "
                    f"{meta['dtype']}",
                    manifest_file,
                )
            arrays[name] = torch.from_numpy(array)
        n = manifest["num_nodes"]
        fields = {
            part: {f: arrays.get(f"{part}_{f}") for f in EDGE_FIELDS} for part in ("csr", "csc")
        }
        csr = CSR(arrays["csr_indptr"], arrays["csr_indices"], n, **fields["csr"])
        csc = (
            CSR(arrays["csc_indptr"], arrays["csc_indices"], n, **fields["csc"])
            if "csc_indptr" in arrays
            else csr
        )
        return GraphStore(
            csr,
            csc,
            manifest["symmetric"],
            manifest["num_users"],
            manifest["num_items"],
            GraphSchema.from_json(manifest.get("schema")),
        )

    def to_pyg(self):
        """PyG ``Data`` with ``edge_index = [source; target]`` (and ``edge_weight`` ``[E]`` when
        weighted)."""
        from torch_geometric.data import Data

        edge_index = torch.stack([self.csr.indices.long(), self.csr.row_ids()])
        data = Data(edge_index=edge_index, num_nodes=self.num_nodes)
        if self.weighted:
            data.edge_weight = self.csr.values
        return data

    @staticmethod
    def from_pyg(data) -> GraphStore:
        """From a PyG ``Data`` (homogeneous) or a user–item ``HeteroData``; a 1-D
        ``edge_weight`` becomes the edges' weights.

        ``HeteroData``: two node types; the first edge type between them gives the
        interactions (its source type is the users), made symmetric (a reverse type, such as
        ``to_hetero``'s ``rated_by``, must hold the same pairs); an edge type within one node
        type gives its same-type edges (made undirected, with its ``edge_weight`` if any)."""
        from torch_geometric.data import HeteroData

        if isinstance(data, HeteroData):
            return _from_hetero(data)
        csr = CSR.from_edges(
            data.edge_index[1],
            data.edge_index[0],
            data.num_nodes,
            data.num_nodes,
            coalesce=False,
            values=_edge_weight(data),
        )
        return GraphStore.from_csr(csr)

    def to_hetero(self, user: str = "user", item: str = "item"):
        """PyG ``HeteroData`` with ``(user, rates, item)`` and ``(item, rated_by, user)`` edges,
        ``(user, links, user)`` / ``(item, links, item)`` for same-type edges, every entity
        type and each entity relation and its reverse (``(item, has_genre, genre)``,
        ``(genre, rev_has_genre, item)``), each in its CSC order (:mod:`gnnrec.data.hetero`),
        with ``edge_weight`` when weighted."""
        from torch_geometric.data import HeteroData

        from gnnrec.data.hetero import TypedGraph, TypeNames

        typed = TypedGraph(self, TypeNames(user=user, item=item))
        data = HeteroData()
        for node_type in typed.node_types:
            data[node_type].num_nodes = typed.num_nodes(node_type)
        for edge_type in typed.edge_types:
            data[edge_type].edge_index = typed.edge_index(edge_type)
            weight = typed.edge_weight(edge_type)
            if weight is not None:
                data[edge_type].edge_weight = weight
        return data


def _from_hetero(data) -> GraphStore:
    """:meth:`GraphStore.from_pyg` of a ``HeteroData``."""
    types = list(data.node_types)
    cross = [t for t in data.edge_types if t[0] != t[2]]
    if len(types) == 2:
        if not cross:
            raise ValueError("HeteroData has no edge type between two node types")
        src, _, dst = cross[0]
    elif "user" in types and "item" in types:
        src, dst = "user", "item"
    else:
        raise ValueError(
            f"HeteroData with node types {types}: with more than two, the users and items "
            "must be the node types 'user' and 'item' (the others become entity types)"
        )
    base = [t for t in data.edge_types if {t[0], t[2]} <= {src, dst}]
    cross = [t for t in base if t[0] != t[2]]
    forward = [t for t in cross if t[0] == src]
    if not forward:
        raise ValueError(f"HeteroData has no edge type from {src!r} to {dst!r}")
    ei = data[forward[0]].edge_index
    pairs = _pair_keys(ei[0], ei[1], data[dst].num_nodes)
    for other in cross:
        if other == forward[0]:
            continue
        back = data[other].edge_index
        if other[0] != dst or not torch.equal(
            pairs, _pair_keys(back[1], back[0], data[dst].num_nodes)
        ):
            raise ValueError(
                f"HeteroData edge types {forward[0]} and {other}: the second must hold the "
                "same pairs reversed (a user-item store has one interaction relation)"
            )
    same, same_weight = {}, {}
    for node_type in (src, dst):
        within = [t for t in base if t[0] == t[2] == node_type]
        if len(within) > 1:
            raise ValueError(
                f"HeteroData has {len(within)} edge types within {node_type!r}: one at most"
            )
        if within:
            same[node_type] = data[within[0]].edge_index.numpy()
            same_weight[node_type] = _numpy(_edge_weight(data[within[0]]))
    entity_types = tuple((t, int(data[t].num_nodes)) for t in types if t not in (src, dst))
    rename = {src: "user", dst: "item"}
    relation_edges = _hetero_relations(data, [t for t in data.edge_types if t not in base], rename)
    schema = GraphSchema(entity_types, tuple(part.relation for part in relation_edges))
    return GraphStore.bipartite(
        ei[0].numpy(),
        ei[1].numpy(),
        data[src].num_nodes,
        data[dst].num_nodes,
        same.get(src),
        same.get(dst),
        weight=_numpy(_edge_weight(data[forward[0]])),
        user_edge_weight=same_weight.get(src),
        item_edge_weight=same_weight.get(dst),
        schema=schema,
        relation_edges=relation_edges,
    )


def _hetero_relations(data, edge_types: list, rename: dict[str, str]) -> list[RelationEdges]:
    """The entity relations of a ``HeteroData``: each edge type as a relation, except one that
    holds the reversed pairs of an earlier one, which becomes that relation's reverse name
    (as :meth:`GraphStore.to_hetero` writes them)."""
    from gnnrec.data.hetero import Relation

    parts: list[RelationEdges] = []
    keys: dict[tuple, tuple[int, torch.Tensor]] = {}  # (source, target) -> part, its pair keys
    for edge_type in edge_types:
        source, name, target = edge_type
        edge_index = data[edge_type].edge_index
        size = max(int(data[target].num_nodes), int(data[source].num_nodes), 1)
        found = keys.get((target, source))
        if found is not None and torch.equal(
            found[1], _pair_keys(edge_index[1], edge_index[0], size)
        ):
            part = parts[found[0]]
            r = part.relation
            part.relation = Relation(r.name, r.source, r.target, name)
            del keys[(target, source)]
            continue
        relation = Relation(name, rename.get(source, source), rename.get(target, target))
        keys[(source, target)] = (len(parts), _pair_keys(edge_index[0], edge_index[1], size))
        weight = _numpy(_edge_weight(data[edge_type]))
        parts.append(RelationEdges(relation, edge_index.numpy(), weight, f"HeteroData {edge_type}"))
    return parts


RELATION_LIMIT = 127  # relation ids are int8


def typed_csr(
    csr: CSR,
    num_users: int,
    num_items: int,
    schema: GraphSchema,
    relation_edges: Sequence[RelationEdges],
) -> CSR:
    """The user–item ``csr`` grown by the entity nodes of ``schema`` (rows and columns after
    the items) and the edges of ``relation_edges`` (relation ``k`` of ``schema.relations``:
    its pairs source -> target as relation ``NUM_RELATIONS + 2k`` and target -> source as the
    next), every edge with its relation id (``relation``, int8). A pair listed twice within a
    relation is one edge weighing its largest weight; a pair in two relations is an edge of
    each. Sorted by row, column, relation."""
    if schema.num_relations > RELATION_LIMIT:
        raise ValueError(
            f"{schema.num_relations} relations (with reverses): at most {RELATION_LIMIT}"
        )
    by_name = {part.relation.name: part for part in relation_edges}
    if sorted(by_name) != sorted(r.name for r in schema.relations):
        raise ValueError(
            f"relation edges for {sorted(by_name)}, but the schema's relations are "
            f"{[r.name for r in schema.relations]}"
        )
    spans = schema.offsets(num_users, num_items)
    n = num_users + num_items + schema.num_entities
    rows, cols = [csr.row_ids()], [csr.indices.long()]
    relations = [base_relations(rows[0], cols[0], num_users)]
    weighted = csr.values is not None or any(p.weight is not None for p in relation_edges)
    values = [csr.values if csr.values is not None else torch.ones(csr.num_edges)]
    for k, relation in enumerate(schema.relations):
        part = by_name[relation.name]
        count = spans[relation.target][1]
        key = part.edges[0].astype(np.int64) * count + part.edges[1]
        key, inverse = np.unique(key, return_inverse=True)
        largest = np.zeros(len(key), np.float32)
        np.maximum.at(largest, inverse, 1.0 if part.weight is None else part.weight)
        source = torch.from_numpy(key // count + spans[relation.source][0])
        target = torch.from_numpy(key % count + spans[relation.target][0])
        rows += [target, source]
        cols += [source, target]
        for r in (NUM_RELATIONS + 2 * k, NUM_RELATIONS + 2 * k + 1):
            relations.append(torch.full((len(key),), r, dtype=torch.int8))
            values.append(torch.from_numpy(largest))
    row, col, relation = torch.cat(rows), torch.cat(cols), torch.cat(relations)
    order = torch.argsort((row * n + col) * RELATION_LIMIT + relation.long())
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(torch.bincount(row, minlength=n), 0)
    dtype = torch.int32 if n < INDEX_DTYPE_LIMIT else torch.int64
    return CSR(
        indptr,
        col[order].to(dtype),
        n,
        torch.cat(values)[order] if weighted else None,
        relation[order],
    )


def _numpy(tensor: torch.Tensor | None) -> np.ndarray | None:
    return None if tensor is None else tensor.numpy()


def _pair_keys(source: torch.Tensor, target: torch.Tensor, num_targets: int) -> torch.Tensor:
    """The sorted distinct ``source * num_targets + target`` keys of a pair list."""
    return torch.unique(source.long() * num_targets + target.long())


def _both_directions(
    edges: np.ndarray, count: int, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sources, targets, weights)`` of the undirected same-type ``edges`` ``[2, E']`` over
    ``count`` nodes: every distinct pair in both directions (a self-loop once), weighing the
    largest of its ``weight`` entries (1 without)."""
    low, high = np.minimum(edges[0], edges[1]), np.maximum(edges[0], edges[1])
    key, inverse = np.unique(low.astype(np.int64) * count + high, return_inverse=True)
    largest = np.zeros(len(key), np.float32)
    np.maximum.at(largest, inverse, 1.0 if weight is None else np.asarray(weight, np.float32))
    low, high = key // count, key % count
    loop = low == high
    return (
        np.concatenate([low, high[~loop]]),
        np.concatenate([high, low[~loop]]),
        np.concatenate([largest, largest[~loop]]),
    )


def _present(fields: dict[str, torch.Tensor | None], prefix: str) -> dict[str, torch.Tensor]:
    """The per-edge arrays that exist, named ``{prefix}_{field}`` as saved."""
    return {f"{prefix}_{name}": t for name, t in fields.items() if t is not None}


def _edge_weight(store) -> torch.Tensor | None:
    """A PyG edge store's ``edge_weight`` ``[E]`` float32 (None when it has none); anything
    else named ``edge_weight`` is refused."""
    weight = getattr(store, "edge_weight", None)
    if weight is None:
        return None
    weight = torch.as_tensor(weight)
    edges = store.edge_index.shape[1]
    if weight.shape != (edges,):
        raise ValueError(f"edge_weight must have shape ({edges},), got {tuple(weight.shape)}")
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
        raise ValueError("edge_weight must be finite and non-negative")
    return weight.float()
