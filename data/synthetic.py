"""A synthetic user–item graph of any size, with planted communities and text that reflects them.

Users and items each belong to one of ``C`` communities (``node % C``). User ``u`` has
``n_u`` interactions, ``n_u`` drawn from a discrete power law (Pareto tail ``activity_alpha``,
mean about ``interactions_per_user``); each interaction stays in ``u``'s community with
probability ``affinity``, else goes to any community, and picks an item there by Zipf popularity
(rank ``r`` within the community has weight ``(r + 1)^-popularity_alpha``), so item degrees
follow a power law too. Item text names its community's topic words; user text names the
topic words of the user's community, so a text encoder alone already places cold nodes near
their community, and the graph adds who-likes-what.

Planted friendships (``friends_per_user > 0``): each user names that many friends, each in
the user's own community with probability ``affinity`` (friends share tastes), else anywhere;
written as ``friendships.npy`` (``[2, F]`` user ids) and ``friendships.csv`` (``src,dst``),
read as the graph's user–user edges (``[data.options] friendships = false`` leaves them out).
Planted item links (``links_per_item > 0``) likewise between items (``item_links.npy`` /
``.csv``, item–item edges unless ``item_links = false``). Planted item attributes
(``attributes_per_item > 0``): ``attributes`` attribute nodes (``a0``, ``a1``, ...; attribute
``m`` in community ``m % C``, 4 a community by default), each item drawn that many of them, in
its community with probability ``affinity``; written as ``item_attributes.npy`` (``[2, F]``
item, attribute ids) and ``.csv``, read as the entity type ``attribute`` and the relation
``has_attribute`` (item -> attribute; ``[data.options] item_attributes = false`` leaves them
out).

Deterministic by ``seed``: users are generated in blocks of ``block_users`` from generators
seeded by ``(seed, block)``, every step a tensor op (:func:`draw_block`, on the CPU or a GPU).
:func:`synthetic_graph` compresses the blocks into the symmetric graph in memory (a
papers100M-scale graph on a GPU in seconds); :func:`write_synthetic` writes them as they are
generated (constant memory):

- ``interactions/part-NNNNN.npy``: ``[2, c]`` int32 ``(user, item)`` pairs per block;
- ``users.csv`` (``user_id, profile``), ``items.csv`` (``item_id, title, description``);
- ``interactions.csv`` (``user_id, item_id, rating, ts``) when ``write_csv``, and
  ``table/part-NNNNN.parquet`` (the same columns, a part per block) when ``write_parquet``:
  the same interactions for other tools and the ``table`` dataset (the ``synthetic`` dataset,
  :func:`load_synthetic`, reads the ``.npy`` parts);
- ``manifest.json`` with the spec and counts.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gnnrec.common.atomic_files import read_json, staged_folder
from gnnrec.common.typed_fields import check_fields
from gnnrec.data.datasets import register_dataset
from gnnrec.data.errors import DataError
from gnnrec.data.graph_store import CSR, INDEX_DTYPE_LIMIT, GraphStore
from gnnrec.data.hetero import Relation
from gnnrec.data.tabular import read_node_table
from gnnrec.data.textgraph import Interactions, NodeTable, RelationEdges, TextGraph

if TYPE_CHECKING:
    from gnnrec.data.config import DataConfig

TOPICS = [
    ("space", ["rocket", "orbit", "galaxy", "astronaut", "comet", "nebula"]),
    ("cooking", ["recipe", "kitchen", "spice", "baking", "chef", "soup"]),
    ("horses", ["stable", "saddle", "gallop", "pony", "rider", "meadow"]),
    ("pirates", ["ship", "treasure", "island", "captain", "parrot", "cannon"]),
    ("jazz", ["saxophone", "trumpet", "swing", "improvisation", "club", "bebop"]),
    ("gardening", ["roses", "soil", "seeds", "greenhouse", "compost", "tulips"]),
    ("chess", ["opening", "gambit", "endgame", "bishop", "checkmate", "tournament"]),
    ("mountains", ["summit", "glacier", "trail", "climbing", "ridge", "avalanche"]),
    ("robots", ["circuit", "android", "sensor", "automation", "servo", "firmware"]),
    ("detectives", ["clue", "suspect", "alibi", "murder", "inspector", "mystery"]),
    ("oceans", ["coral", "whale", "reef", "tide", "diver", "shark"]),
    ("football", ["goal", "striker", "league", "stadium", "referee", "penalty"]),
    ("dinosaurs", ["fossil", "raptor", "jurassic", "skeleton", "volcano", "herbivore"]),
    ("painting", ["canvas", "brush", "portrait", "watercolor", "gallery", "easel"]),
    ("trains", ["railway", "locomotive", "station", "carriage", "steam", "timetable"]),
    ("vampires", ["castle", "midnight", "fangs", "coffin", "moonlight", "curse"]),
]
STYLES = ["a gentle", "a thrilling", "an odd", "a classic", "a modern", "a short", "a long"]


@dataclass(kw_only=True)
class SyntheticSpec:
    num_users: int = 10_000
    num_items: int = 2_000
    communities: int = 8
    interactions_per_user: float = 20.0
    activity_alpha: float = 2.5
    affinity: float = 0.8
    popularity_alpha: float = 1.0
    seed: int = 0
    block_users: int = 100_000
    friends_per_user: int = 0
    links_per_item: int = 0
    attributes_per_item: int = 0
    attributes: int = 0  # attribute nodes (0: 4 per community)

    def __post_init__(self) -> None:
        check_fields(self)
        if min(self.num_users, self.num_items, self.communities, self.block_users) < 1:
            raise ValueError("num_users, num_items, communities and block_users must be >= 1")
        if self.communities > self.num_items:
            raise ValueError("every community needs an item: communities <= num_items")
        if not 0.0 <= self.affinity <= 1.0 or self.interactions_per_user < 1:
            raise ValueError("affinity must be in [0, 1] and interactions_per_user >= 1")
        if self.activity_alpha <= 1.0:
            raise ValueError("activity_alpha must be > 1 (a finite mean)")
        if min(self.friends_per_user, self.links_per_item, self.attributes_per_item) < 0:
            raise ValueError(
                "friends_per_user, links_per_item and attributes_per_item must be >= 0"
            )
        if self.attributes < 0:
            raise ValueError(f"attributes must be >= 0 (0: 4 per community), got {self.attributes}")

    @property
    def num_attributes(self) -> int:
        """The attribute nodes (none without ``attributes_per_item``)."""
        if not self.attributes_per_item:
            return 0
        return self.attributes or 4 * self.communities


def draw_links(
    spec: SyntheticSpec, count: int, per_node: int, stream: int, targets: int | None = None
) -> np.ndarray:
    """``[2, F]`` int64 ``(node, other)`` pairs from ``count`` nodes to ``targets`` nodes of
    another type (default: among the ``count`` nodes, self-pairs dropped); node ``k`` of
    either is in community ``k % C``. ``per_node`` draws per node, in its community with
    probability ``affinity`` (else any community), uniform within it. Deterministic by
    ``(seed, stream)``, apart from the blocks' streams."""
    rng = np.random.default_rng([spec.seed, stream])
    C = spec.communities
    n = count if targets is None else targets
    nodes = np.repeat(np.arange(count, dtype=np.int64), per_node)
    same = rng.random(len(nodes)) < spec.affinity
    community = np.where(same, nodes % C, rng.integers(0, C, len(nodes)))
    members = (n - community + C - 1) // C  # nodes in each drawn community
    other = community + C * np.floor(rng.random(len(nodes)) * members).astype(np.int64)
    keep = (other < n) & ((other != nodes) if targets is None else True)
    return np.stack([nodes[keep], other[keep]])


def draw_friendships(spec: SyntheticSpec) -> np.ndarray:
    """The planted friendships ``[2, F]`` (user ids): :func:`draw_links` of the users."""
    return draw_links(spec, spec.num_users, spec.friends_per_user, 2)


def draw_item_links(spec: SyntheticSpec) -> np.ndarray:
    """The planted item links ``[2, F]`` (item ids): :func:`draw_links` of the items."""
    return draw_links(spec, spec.num_items, spec.links_per_item, 3)


def draw_item_attributes(spec: SyntheticSpec) -> np.ndarray:
    """The planted item attributes ``[2, F]`` (item, attribute ids): :func:`draw_links` from
    the items to the attribute nodes."""
    return draw_links(spec, spec.num_items, spec.attributes_per_item, 4, spec.num_attributes)


def topic(community: int) -> tuple[str, list[str]]:
    """The name and words of a community (pairs of base topics beyond the first 16)."""
    name, words = TOPICS[community % len(TOPICS)]
    if community >= len(TOPICS):
        other, more = TOPICS[(community // len(TOPICS) + community) % len(TOPICS)]
        return f"{name} and {other}", words[:3] + more[:3]
    return name, words


def item_text(item: int, communities: int) -> tuple[str, str]:
    """``(title, description)`` of an item, built from its community's words."""
    rng = np.random.default_rng(item)
    name, words = topic(item % communities)
    picked = rng.choice(words, 3, replace=False)
    style = STYLES[int(rng.integers(len(STYLES)))]
    title = f"The {picked[0]} {item}"
    return title, f"{style} story about {name}: {picked[1]}, {picked[2]} and more."


def user_text(user: int, communities: int) -> str:
    rng = np.random.default_rng(10**9 + user)
    name, words = topic(user % communities)
    picked = rng.choice(words, 2, replace=False)
    return f"I enjoy {name}, especially {picked[0]} and {picked[1]}."


def _block_generator(spec: SyntheticSpec, block: int, device: torch.device) -> torch.Generator:
    """The random stream of one block: seeded by ``(seed, block)`` through numpy's
    ``SeedSequence`` (well mixed), on ``device`` (CPU and CUDA streams differ, so a graph drawn
    on a GPU is another draw from the same distribution)."""
    state = np.random.SeedSequence([spec.seed, block]).generate_state(1, np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state))


def draw_block(spec: SyntheticSpec, block: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Interactions ``[2, c]`` int64 ``(user, item)`` of users ``block * block_users ...`` on
    ``device``, sorted by ``(user, item)``, no pair repeated; every step is a tensor op, so a GPU
    draws a block of millions of users at once.

    Item choice is Zipf by rank within the community: community ``c`` holds items
    ``c, c + C, ...`` (``s_c`` of them) and rank ``r`` has weight ``(r + 1)^-popularity_alpha``;
    one shared cumulative weight table ``W`` serves every community by drawing ``u * W[s_c - 1]``.
    """
    device = torch.device(device)
    g = _block_generator(spec, block, device)
    C, I = spec.communities, spec.num_items
    first = block * spec.block_users
    users = torch.arange(first, min(first + spec.block_users, spec.num_users), device=device)
    # Discrete Pareto activity with the requested mean, capped by the catalogue.
    xm = spec.interactions_per_user * (spec.activity_alpha - 1) / spec.activity_alpha
    uniform = torch.rand(users.numel(), generator=g, dtype=torch.float64, device=device)
    activity = torch.floor(xm * (1 - uniform) ** (-1 / spec.activity_alpha))
    activity = activity.clamp(1, I).long()
    owner = torch.repeat_interleave(users, activity)
    stray = torch.rand(owner.numel(), generator=g, device=device) >= spec.affinity
    elsewhere = torch.randint(0, C, (owner.numel(),), generator=g, device=device)
    community = torch.where(stray, elsewhere, owner % C)
    ranks = -(-I // C)
    weights = torch.cumsum(
        (torch.arange(ranks, dtype=torch.float64, device=device) + 1) ** -spec.popularity_alpha, 0
    )
    size = (I - torch.arange(C, device=device) + C - 1) // C  # items per community
    draw = torch.rand(owner.numel(), generator=g, dtype=torch.float64, device=device)
    rank = torch.searchsorted(weights, draw * weights[size - 1][community], right=True)
    items = community + C * torch.minimum(rank, size[community] - 1)
    keys = torch.unique(owner * I + items)
    return torch.stack([keys // I, keys % I])


def generate_block(spec: SyntheticSpec, block: int) -> tuple[int, np.ndarray]:
    """``(first_user, pairs [2, c] int64)`` of a block drawn on the CPU (:func:`draw_block`)."""
    return block * spec.block_users, draw_block(spec, block).numpy()


def _one_thread() -> None:
    """Pool workers compute with one thread each (and fork safely after the parent's threads)."""
    torch.set_num_threads(1)


def generate_blocks(spec: SyntheticSpec, workers: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Every block in order; with ``workers > 1``, generated by that many processes, at most
    ``2 * workers`` blocks ahead of the consumer."""
    blocks = range(-(-spec.num_users // spec.block_users))
    if workers <= 1:
        for block in blocks:
            yield generate_block(spec, block)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
        pending = deque()
        for block in blocks:
            pending.append(pool.submit(generate_block, spec, block))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def block_ratings(spec: SyntheticSpec, block: int, count: int) -> np.ndarray:
    """The ratings (3-5) of a block's ``count`` interactions, drawn from ``(seed, block, 1)``."""
    return np.random.default_rng([spec.seed, block, 1]).integers(3, 6, count)


def block_table(spec: SyntheticSpec, block: int, pairs: np.ndarray):
    """Block ``block``'s interactions ``pairs`` ``[2, c]`` as an Arrow table of ``user_id``
    (``u<k>``), ``item_id`` (``i<k>``), ``rating`` and ``ts``, built column-wise."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def named(prefix: str, ids: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(prefix, pa.array(ids).cast(pa.string()), "")

    count = pairs.shape[1]
    return pa.table(
        {
            "user_id": named("u", pairs[0]),
            "item_id": named("i", pairs[1]),
            "rating": pa.array(block_ratings(spec, block, count)),
            "ts": pa.array(np.arange(count)),
        }
    )


# name, drawn by, id prefixes: the planted links a folder may hold
LINKS = (
    ("friendships", draw_friendships, "uu"),
    ("item_links", draw_item_links, "ii"),
    ("item_attributes", draw_item_attributes, "ia"),
)
ATTRIBUTE = Relation("has_attribute", "item", "attribute", "attribute_of")


def write_synthetic(
    spec: SyntheticSpec,
    folder: str | Path,
    write_csv: bool = True,
    progress: Callable[[int], None] | None = None,
    write_text: bool = True,
    workers: int = 1,
    write_parquet: bool = False,
) -> Path:
    """Streams the dataset of ``spec`` into ``folder`` (written under a temporary name, then
    renamed); ``progress(users_done)`` after every block. ``write_text=False`` leaves out
    ``users.csv`` and ``items.csv`` (graph-only benchmarks); ``workers`` processes generate
    blocks in parallel (the files do not depend on it)."""
    folder = Path(folder)
    with staged_folder(folder, "synthetic dataset") as tmp:
        (tmp / "interactions").mkdir()
        if write_parquet:
            (tmp / "table").mkdir()
        if write_text:
            with open(tmp / "items.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["item_id", "title", "description"])
                for item in range(spec.num_items):
                    w.writerow([f"i{item}", *item_text(item, spec.communities)])
        interactions = 0
        with (
            open(tmp / "users.csv" if write_text else os.devnull, "w", newline="") as users_file,
            open(
                tmp / "interactions.csv" if write_csv else os.devnull, "w", newline=""
            ) as csv_file,
        ):
            users_writer, pairs_writer = csv.writer(users_file), csv.writer(csv_file)
            if write_text:
                users_writer.writerow(["user_id", "profile"])
            if write_csv:
                pairs_writer.writerow(["user_id", "item_id", "rating", "ts"])
            for block, (first, pairs) in enumerate(generate_blocks(spec, workers)):
                last = min(first + spec.block_users, spec.num_users)
                if write_text:
                    users_writer.writerows(
                        [f"u{u}", user_text(u, spec.communities)] for u in range(first, last)
                    )
                np.save(tmp / "interactions" / f"part-{block:05d}.npy", pairs.astype(np.int32))
                if write_parquet:
                    import pyarrow.parquet as pq

                    part = tmp / "table" / f"part-{block:05d}.parquet"
                    pq.write_table(block_table(spec, block, pairs), part)
                if write_csv:
                    ratings = block_ratings(spec, block, pairs.shape[1])
                    pairs_writer.writerows(
                        (f"u{u}", f"i{i}", r, t)
                        for t, (u, i, r) in enumerate(zip(*pairs.tolist(), ratings.tolist()))
                    )
                interactions += pairs.shape[1]
                if progress is not None:
                    progress(last)
        links = {}
        for name, draw, prefix in LINKS:
            pairs = draw(spec)
            if pairs.size:
                np.save(tmp / f"{name}.npy", pairs)
                if write_csv:
                    with open(tmp / f"{name}.csv", "w", newline="") as f:
                        w = csv.writer(f)
                        w.writerow(["src", "dst"])
                        w.writerows(
                            (f"{prefix[0]}{a}", f"{prefix[1]}{b}") for a, b in zip(*pairs.tolist())
                        )
            links[name] = pairs.shape[1]
        manifest = {"spec": dataclasses.asdict(spec), "interactions": interactions, **links}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def load_synthetic(
    folder: str | Path,
    friendships: bool = True,
    item_links: bool = True,
    item_attributes: bool = True,
) -> TextGraph:
    """A folder of :func:`write_synthetic` as a :class:`TextGraph`, without parsing
    ``interactions.csv`` (which need not exist): interactions from the ``.npy`` parts, with the
    ratings and timestamps the CSV holds; text from ``users.csv`` and ``items.csv``; the
    planted friendships and item links as user–user and item–item edges and the item
    attributes as the entity type ``attribute`` (unless ``friendships`` / ``item_links`` /
    ``item_attributes`` is False)."""
    folder = Path(folder)
    manifest_file = folder / "manifest.json"
    if not manifest_file.is_file():
        raise DataError("no manifest.json: not a folder written by `gnnrec synth`", folder)
    spec = SyntheticSpec(**read_json(manifest_file)["spec"])
    tables = []
    for kind, count, fields in (
        ("user", spec.num_users, ["profile"]),
        ("item", spec.num_items, ["title", "description"]),
    ):
        path = folder / f"{kind}s.csv"
        if not path.is_file():
            raise DataError("missing: this dataset was written without text (graph only)", path)
        table = read_node_table(path, f"{kind}_id", fields)
        if table.ids != [f"{kind[0]}{k}" for k in range(count)]:
            raise DataError(f"expected the ids {kind[0]}0 .. {kind[0]}{count - 1} in order", path)
        tables.append(table)
    parts = []
    for block in range(-(-spec.num_users // spec.block_users)):
        path = folder / "interactions" / f"part-{block:05d}.npy"
        if not path.is_file():
            raise DataError("missing interaction part", path)
        try:
            pairs = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"not a readable .npy part ({err})", path) from None
        if pairs.ndim != 2 or pairs.shape[0] != 2:
            raise DataError(f"expected a [2, c] array, got shape {list(pairs.shape)}", path)
        if not np.issubdtype(pairs.dtype, np.integer):
            raise DataError(f"expected integer node ids, got {pairs.dtype}", path)
        if pairs.size and (pairs.min() < 0 or pairs[0].max() >= spec.num_users):
            raise DataError("user ids outside the manifest's num_users", path)
        if pairs.size and pairs[1].max() >= spec.num_items:
            raise DataError("item ids outside the manifest's num_items", path)
        count = pairs.shape[1]
        ratings = block_ratings(spec, block, count)
        parts.append(Interactions(pairs[0], pairs[1], ratings, np.arange(count)))
    edges = {}
    for (name, _, _), wanted in zip(LINKS, (friendships, item_links, item_attributes)):
        edges[name] = _links(folder, name) if wanted else None
    entities, relations = {}, []
    if edges["item_attributes"] is not None:
        entities["attribute"] = NodeTable([f"a{m}" for m in range(spec.num_attributes)])
        relations.append(RelationEdges(ATTRIBUTE, edges["item_attributes"], where=str(folder)))
    return TextGraph(
        folder.name,
        *tables,
        Interactions.concat(parts),
        user_edges=edges["friendships"],
        item_edges=edges["item_links"],
        entities=entities,
        relation_edges=relations,
    )


def _links(folder: Path, name: str) -> np.ndarray | None:
    """The planted links ``name`` ``[2, F]`` of a written folder (None when it has none)."""
    manifest = read_json(folder / "manifest.json")
    if not manifest.get(name):
        return None
    path = folder / f"{name}.npy"
    if not path.is_file():
        raise DataError(f"missing: the manifest plants {manifest[name]} {name}", path)
    pairs = np.load(path, allow_pickle=False).astype(np.int64)
    if pairs.ndim != 2 or pairs.shape[0] != 2:
        raise DataError(f"expected a [2, F] array, got shape {list(pairs.shape)}", path)
    return pairs


@dataclass(kw_only=True)
class SyntheticOptions:
    """``[data.options]`` of the ``synthetic`` dataset: read the planted friendships and item
    links (when the folder has them) as user–user and item–item edges, and the planted item
    attributes as entity nodes."""

    friendships: bool = True
    item_links: bool = True
    item_attributes: bool = True


@register_dataset("synthetic", options=SyntheticOptions)
def _load_synthetic_dataset(cfg: DataConfig, path: Path | None) -> tuple[TextGraph, None]:
    """A folder written by ``gnnrec synth``."""
    o: SyntheticOptions = cfg.dataset_options
    return load_synthetic(path, o.friendships, o.item_links, o.item_attributes), None


def node_pair_chunks(folder: str | Path) -> Callable[[], Iterator[np.ndarray]]:
    """The interaction parts of a written dataset as ``[2, c]`` node-id pairs (users ``0..U-1``,
    items ``U..``), the ``chunks`` of :func:`~gnnrec.data.out_of_core.build_csr_out_of_core`."""
    folder = Path(folder)
    num_users = read_json(folder / "manifest.json")["spec"]["num_users"]
    parts = sorted((folder / "interactions").glob("part-*.npy"))

    def chunks() -> Iterator[np.ndarray]:
        for path in parts:
            pairs = np.load(path).astype(np.int64)
            pairs[1] += num_users
            yield pairs

    return chunks


def synthetic_graph(
    spec: SyntheticSpec,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> GraphStore:
    """The symmetric user–item graph of ``spec`` (users ``0..U-1``, items ``U..``) drawn and
    compressed in memory on ``device``, with no files: for graph-only benchmarks at sizes where
    writing parts and building out of core would dominate (on a GPU, 1.6B edges in seconds).
    On the CPU it is exactly the graph of :func:`write_synthetic` then a symmetrized
    out-of-core build. ``progress(users_done)`` after every block.

    Blocks come sorted by ``(user, item)``, so the user rows are the blocks' items as drawn;
    the item rows need one sort of ``item * U + user`` keys. Indices are int32 below 2^31 nodes.
    """
    U, I = spec.num_users, spec.num_items
    dtype = torch.int32 if U + I < INDEX_DTYPE_LIMIT else torch.int64
    user_of, item_of = [], []
    for block in range(-(-U // spec.block_users)):
        pairs = draw_block(spec, block, device)
        user_of.append(pairs[0].to(dtype))
        item_of.append(pairs[1].to(dtype))
        if progress is not None:
            progress(min((block + 1) * spec.block_users, U))
    users, items = torch.cat(user_of), torch.cat(item_of)
    del user_of, item_of
    user_degree = torch.bincount(users, minlength=U)
    item_degree = torch.bincount(items, minlength=I)
    by_item = torch.sort(items.long() * U + users).values
    del users
    indptr = torch.zeros(U + I + 1, dtype=torch.int64, device=items.device)
    torch.cumsum(torch.cat([user_degree, item_degree]), 0, out=indptr[1:])
    indices = torch.cat([items + U, (by_item % U).to(items.dtype)])
    csr = CSR(indptr, indices, U + I)
    return GraphStore(csr, csr, True, U, I)
