"""A trained run held in memory: load once, then answer recommendation and similarity queries
and fold in new interactions without touching disk again.

>>> import gnnrec
>>> run = gnnrec.load("runs/demo")
>>> run.recommend(["1"], k=3)["1"]              # [(item id, score), ...], seen items excluded
>>> run.recommend_for_items(["1", "50"], k=3)   # a new user placed from two items (fold-in)
>>> run.record("new-user", ["1", "50"])         # their next recommendations reflect these
>>> run.similar_items(["1"], k=3)["1"]          # cosine similarity of final embeddings

What the handle holds: the model, the training graph, the final embeddings ``z`` ``[U + I, H]``
(the ones ``gnnrec recommend`` ranks with), each layer's inputs over the graph (what fold-in
reads, :mod:`gnnrec.serve.fold_in`), every user's seen items, and the users it folded in.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gnnrec.common.arguments import check_text, id_list, positive_int
from gnnrec.common.log import get_logger
from gnnrec.config import RunConfig
from gnnrec.data.graph_store import GraphStore
from gnnrec.data.user_text import user_text_for_items
from gnnrec.explain.explanation import Explanation
from gnnrec.explain.run_evidence import explain_pairs
from gnnrec.models.graph_view import GraphView
from gnnrec.models.recommender import Recommender
from gnnrec.pipeline import Prepared
from gnnrec.serve.fold_in import (
    FIT_STEPS,
    GraphState,
    fit_rows,
    fit_rows_linear,
    fold_in_users,
)
from gnnrec.serve.item_index import IndexConfig, ItemIndex, check_indexable
from gnnrec.train.checkpoint import state_digest
from gnnrec.train.recommend import top_k_items
from gnnrec.train.training_data import seen_items

log = get_logger(__name__)
Ranked = list[tuple[str, float]]  # (id, score), best first
TRAINED = "trained"  # the version name of a run before any update
MAX_CANDIDATES = 4096  # index candidates a query may ask for (more seen items: exact ranking)


class UnknownIds(ValueError):
    """Ids the run does not know: ``kind`` ("user" or "item") and the ``ids``."""

    def __init__(self, kind: str, ids: list[str]):
        self.kind, self.ids = kind, ids
        shown = ", ".join(repr(i) for i in ids[:5]) + (" ..." if len(ids) > 5 else "")
        super().__init__(f"unknown {kind} id(s): {shown}")


@dataclass
class FoldedUser:
    """A user folded in by :meth:`RunHandle.record`: final embedding ``z`` ``[H]``, ``seen``
    item rows (sorted) and ``recent`` (the recorded ones, latest first)."""

    z: torch.Tensor
    seen: np.ndarray
    recent: list[int]


class RunHandle:
    """See the module docstring; build with :func:`load`. Thread-safe: updates (:meth:`record`)
    take a lock that queries also take."""

    def __init__(
        self,
        run_dir: Path,
        config: RunConfig,
        prepared: Prepared,
        model: Recommender,
        index: IndexConfig | None = None,
        fold_in_steps: int | None = None,
    ):
        """``index``: rank known and folded-in users' items through an approximate index of the
        item embeddings (:mod:`gnnrec.serve.item_index`; dot-product models only) instead of
        scoring every item. ``fold_in_steps``: BPR steps that fit a new user's ID row (for a
        propagating model, through the propagation: :func:`~gnnrec.serve.fold_in.fit_rows`);
        0: the propagation alone; default :data:`~gnnrec.serve.fold_in.FIT_STEPS` for a model
        with ID embeddings, else 0."""
        self.run_dir, self.config, self.model = run_dir, config, model.requires_grad_(False)
        self.graph, self.split, self._data = prepared.graph, prepared.split, prepared.data
        data = prepared.data
        self.num_users, self.num_items = data.num_users, data.num_items
        self.version = state_digest({k: v.cpu() for k, v in model.state_dict().items()})[:12]
        self.version_name = TRAINED  # or the run's version it holds (gnnrec.versions)
        self._user_row = {u: n for n, u in enumerate(self.graph.users.ids)}
        self._item_row = {i: n for n, i in enumerate(self.graph.items.ids)}
        self._titles = self.graph.items.text_fields.get("title", self.graph.items.ids)
        self._lock = threading.RLock()
        self._encoder = None
        from gnnrec.outputs import embeddings

        self.z = embeddings(prepared, model, config).to(model.device)
        self._seen = seen_items(data.train[0], data.train[1], self.num_users)
        self._state: GraphState | None = None  # built on the first fold-in (prepare_fold_in)
        self._fresh: dict[str, FoldedUser] = {}
        self._z_text: torch.Tensor | None = None  # text_embeddings, made on first use
        if fold_in_steps is None:
            fold_in_steps = FIT_STEPS if config.model.id_embeddings else 0
        if fold_in_steps and not config.model.id_embeddings:
            raise ValueError("fold_in_steps fits an ID row: the model has no ID embeddings")
        if fold_in_steps < 0:
            raise ValueError(f"fold_in_steps must be >= 0, got {fold_in_steps}")
        self.fold_in_steps = fold_in_steps
        self._index = None
        if index is not None:
            check_indexable(model)
            self._index = ItemIndex(self.z[self.num_users :].cpu().numpy(), index)

    @property
    def training_graph(self) -> GraphStore:
        """The graph the model propagates over (users, items, entities; PyG's ``HeteroData``
        by ``.to_hetero()``)."""
        return self._data.graph

    @property
    def user_ids(self) -> Sequence[str]:
        """The trained users' ids, in row order."""
        return self.graph.users.ids

    @property
    def item_ids(self) -> Sequence[str]:
        """The items' ids, in row order."""
        return self.graph.items.ids

    @property
    def item_titles(self) -> Sequence[str]:
        """The items' titles (their ids where the data has none), in row order."""
        return self._titles

    def prepare_fold_in(self) -> None:
        """Computes what fold-in reads (each layer's inputs over the whole graph: one forward
        pass, ``L`` ``[U + I, H]`` tensors) now rather than on the first fold-in."""
        with self._lock:
            if self._state is None and self.model.propagates:
                self._state = _graph_state(self.model, self._data)

    @functools.cached_property
    def _unit(self) -> torch.Tensor:
        """``z`` with unit rows (cosine similarity), made on the first similarity query."""
        return torch.nn.functional.normalize(self.z, dim=1)

    # ---- ids ----------------------------------------------------------------------------------

    def item_rows(self, items: Sequence[str]) -> np.ndarray:
        """Item rows of ``items`` (ids as in the data); :class:`UnknownIds` names any unknown."""
        rows = [self._item_row.get(str(i), -1) for i in items]
        unknown = [str(i) for i, r in zip(items, rows) if r < 0]
        if unknown:
            raise UnknownIds("item", unknown)
        return np.asarray(rows, dtype=np.int64)

    @property
    def num_folded(self) -> int:
        """Users folded in or updated since loading."""
        return len(self._fresh)

    def knows_user(self, user: str) -> bool:
        """Whether ``user`` was trained on or folded in."""
        return user in self._user_row or user in self._fresh

    def title(self, item: str) -> str:
        """The item's title (its id when the data has none)."""
        row = self._item_row.get(str(item))  # (per item of every answer: one lookup)
        if row is None:
            raise UnknownIds("item", [str(item)])
        return self._titles[row]

    def seen_items(self, user: str) -> list[str]:
        """The items ``user`` (known or folded in) has: training interactions and any recorded
        since."""
        user = id_list([user], "user")[0]
        with self._lock:
            if not self.knows_user(user):
                raise UnknownIds("user", [user])
            return [self.graph.items.ids[i] for i in self._seen_rows(user)]

    # ---- queries ------------------------------------------------------------------------------

    def recommend(self, users: Sequence[str], k: int = 10) -> dict[str, Ranked]:
        """Top-``k`` unseen items per user (each known or folded in), best first."""
        k = positive_int(k, "k")
        users, z, seen = self._users(users)
        return dict(zip(users, self._rank(z, seen, k)))

    def recommend_for_items(
        self, items: Sequence[str], k: int = 10, text: str | None = None
    ) -> Ranked:
        """Top-``k`` items for a new user who has ``items`` (best liked first; and, for a model
        with text features, describes themselves by ``text``), folded in; ``items`` excluded."""
        k = positive_int(k, "k")
        rows = self.new_user_rows(items, text)
        z = self._fold_new([rows], [text])[0]
        return self._rank(z[None], [rows], k)[0]

    def recommend_for_item_lists(
        self,
        item_lists: Sequence[Sequence[str]],
        k: int = 10,
        texts: Sequence[str | None] | None = None,
    ) -> list[Ranked]:
        """:meth:`recommend_for_items` for ``B`` new users at once (one fold-in and one ranking
        for them all): each one's top-``k``, in order; ``texts``: each one's text or ``None``."""
        k = positive_int(k, "k")
        texts = [None] * len(item_lists) if texts is None else list(texts)
        if len(texts) != len(item_lists):
            raise ValueError(f"{len(item_lists)} item lists but {len(texts)} texts")
        rows = [self.new_user_rows(items, text) for items, text in zip(item_lists, texts)]
        return self._rank(self._fold_new(rows, texts), rows, k)

    def new_user_rows(self, items: Sequence[str], text: str | None = None) -> np.ndarray:
        """The item rows of a new user who has ``items`` (and describes themselves by
        ``text``); the errors :meth:`recommend_for_items` raises for them (an unknown or no
        item, text the model cannot read)."""
        rows = self.item_rows(id_list(items, "items"))
        if rows.size == 0:
            raise ValueError("items is empty: give at least one item the new user has")
        if text is not None:
            check_text(text, "text")
            if not self.config.model.text_features:
                raise ValueError(
                    "this model uses no text features, so it cannot read a new user's text"
                )
        return rows

    def embed_new_users(self, item_lists: Sequence[Sequence[str]]) -> torch.Tensor:
        """Final embeddings ``[B, H]`` of ``B`` new users, each folded in from their items
        (best liked first), as :meth:`recommend_for_items` places one."""
        rows = [self.item_rows(id_list(items, "items")) for items in item_lists]
        if any(r.size == 0 for r in rows):
            raise ValueError("an item list is empty: every new user needs at least one item")
        return self._fold_new(rows, [None] * len(rows))

    def recommend_for_text(self, text: str, k: int = 10) -> Ranked:
        """Top-``k`` items for a new user known only by ``text``, placed by the text projection
        alone (layer 0: no ID, no edges)."""
        k = positive_int(k, "k")
        z = self.embed_texts([text])
        return self._rank(z, [np.zeros(0, dtype=np.int64)], k)[0]

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Final embeddings ``[B, H]`` of ``B`` new users known only by ``texts``, as
        :meth:`recommend_for_text` places one."""
        x = self._encode([check_text(text, "text") for text in texts])
        with torch.no_grad():
            return self.model.place_text(x).to(self.z.device)

    def similar_items(self, items: Sequence[str], k: int = 10) -> dict[str, Ranked]:
        """The ``k`` items whose final embeddings are nearest each of ``items`` by cosine
        similarity (the item itself left out)."""
        k = positive_int(k, "k")
        items = list(dict.fromkeys(id_list(items, "items")))
        rows = self.item_rows(items)
        unit = self._unit[self.num_users :]
        ranked = self._nearest(unit[torch.as_tensor(rows)], unit, [[r] for r in rows], k)
        return dict(zip(items, _named(ranked, self.graph.items.ids)))

    def similar_users(self, users: Sequence[str], k: int = 10) -> dict[str, Ranked]:
        """The ``k`` trained users nearest each of ``users`` (known or folded in) by cosine
        similarity of final embeddings (the user itself left out)."""
        k = positive_int(k, "k")
        users, z, _ = self._users(users)
        query = torch.nn.functional.normalize(z, dim=1)
        selves = [[self._user_row[u]] if u in self._user_row else [] for u in users]
        ranked = self._nearest(query, self._unit[: self.num_users], selves, k)
        return dict(zip(users, _named(ranked, self.graph.users.ids)))

    def explain(self, user: str, item: str, k: int = 5, paths: int = 3) -> Explanation:
        """Why ``item`` is (or would be) recommended to ``user``: the evidence of the score, its
        ``k`` largest history terms and the paths through the ``paths`` best
        (:mod:`gnnrec.explain`), with a template sentence."""
        return explain_pairs(self, [(user, item)], k, paths)[0]

    def explain_pairs(
        self, pairs: Sequence[tuple[str, str]], k: int = 5, paths: int = 3
    ) -> list[Explanation]:
        """:meth:`explain` for many ``(user, item)`` pairs at once (one batched computation)."""
        return explain_pairs(self, pairs, k, paths)

    def text_embeddings(self) -> torch.Tensor:
        """The text part of ``z`` ``[U + I, H]``: the model with every ID row masked (for a
        model linear in layer 0, ``z`` less this is the ID part); computed once."""
        if not self.config.model.text_features:
            raise ValueError("this model uses no text features")
        with self._lock:
            if self._z_text is None:
                data = self._data
                view = GraphView.of(data.graph.csr).to(self.model.device)
                n = data.graph.num_nodes
                x = data.features.to(self.model.device)
                with torch.no_grad():
                    self._z_text = self.model(
                        torch.arange(n, device=self.model.device),
                        x,
                        view,
                        torch.zeros(n, dtype=torch.bool, device=self.model.device),
                    )[: self.num_users + self.num_items]
            return self._z_text

    # ---- updates ------------------------------------------------------------------------------

    def record(self, user: str, items: Sequence[str]) -> None:
        """Folds ``user``'s new interactions with ``items`` in at once: a known user is updated
        (their layer 0 kept, their row reading old and new items), a new one is placed from
        them; either way the items are excluded from their recommendations from now on."""
        user = id_list([user], "user")[0]
        rows = self.item_rows(id_list(items, "items"))
        if rows.size == 0:
            raise ValueError("items is empty: record at least one item")
        with self._lock:
            if self.knows_user(user) and np.isin(rows, self._seen_rows(user)).all():
                return  # nothing new (e.g. a logged interaction a later version trained on)
            seen = np.union1d(self._seen_rows(user), rows)
            before = self._fresh[user].recent if user in self._fresh else []
            recent = list(dict.fromkeys(rows[::-1].tolist() + before))
            if user in self._user_row:
                row = self._user_row[user]
                self.prepare_fold_in()
                h0 = self._state.states[0][row : row + 1] if self._state else self.z[row : row + 1]
                # their trained ID row is kept; MF and NCF refit it to the new items
                z = self._fold(
                    h0.to(self.z.device), [seen], fit=not self.model.propagates, user_rows=[row]
                )[0]
            else:
                z = self._fold_new([np.asarray(recent)], [None])[0]
            self._fresh[user] = FoldedUser(z, seen, recent)

    def close(self) -> None:
        """Shuts the text encoder down (when one was started)."""
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None

    # ---- internals ----------------------------------------------------------------------------

    def _users(self, users: Sequence[str]) -> tuple[list[str], torch.Tensor, list[np.ndarray]]:
        """The distinct ``users`` (each known or folded in, else :class:`UnknownIds`), their
        final embeddings ``[B, H]`` and seen item rows, read together under the lock."""
        users = list(dict.fromkeys(id_list(users, "users")))
        unknown = [u for u in users if not self.knows_user(u)]
        if unknown:
            raise UnknownIds("user", unknown)
        with self._lock:
            z = torch.stack([self._user_z(u) for u in users]) if users else self.z[:0]
            return users, z, [self._seen_rows(u) for u in users]

    def _user_z(self, user: str) -> torch.Tensor:
        if user in self._fresh:
            return self._fresh[user].z
        return self.z[self._user_row[user]]

    def _seen_rows(self, user: str) -> np.ndarray:
        if user in self._fresh:
            return self._fresh[user].seen
        if user in self._user_row:
            indptr, items = self._seen
            row = self._user_row[user]
            return items[indptr[row] : indptr[row + 1]]
        return np.zeros(0, dtype=np.int64)

    def _fold_new(self, item_lists: list[np.ndarray], texts: list[str | None]) -> torch.Tensor:
        """Embeddings ``[B, H]`` of new users with ``item_lists`` (best first) and ``texts``."""
        width = self.z.shape[1]
        if self.config.model.text_features:
            described = [
                " ".join(p for p in (t, user_text_for_items(self.graph, r, self.config.data)) if p)
                for r, t in zip(item_lists, texts)
            ]
            with torch.no_grad():
                h0 = self.model.place_text(self._encode(described)).to(self.z.device)
        else:  # (texts checked by new_user_rows: none for a model without text features)
            h0 = torch.zeros(len(item_lists), width, device=self.z.device)
        return self._fold(h0, item_lists)

    def _fold(
        self,
        h0: torch.Tensor,
        item_lists: list[np.ndarray],
        fit: bool = True,
        user_rows: list[int] | None = None,
    ) -> torch.Tensor:
        """Embeddings ``[B, H]`` of users with layer 0 ``h0`` and edges to ``item_lists``
        (``user_rows``: each one's trained row, or -1 / None for new users): propagated (an ID
        row fitted through the propagation with ``fold_in_steps``), or an ID row fitted (MF,
        NCF), or ``h0`` (no graph and no ID table)."""
        self.prepare_fold_in()
        state = self._state
        if state is not None:
            weights = None
            if state.weighted:
                rows = user_rows or [-1] * len(item_lists)
                weights = [self._edge_weights(r, items) for r, items in zip(rows, item_lists)]
            if not (fit and self.fold_in_steps):
                return fold_in_users(self.model, state, h0, item_lists, weights)

            share = self.model.own_layer0_share
            if share is None:  # attention reads the row: the fold-in again at every step

                def embed(b: int, row: torch.Tensor) -> torch.Tensor:
                    w = None if weights is None else [weights[b]]
                    return fold_in_users(self.model, state, h0[b : b + 1] + row, [item_lists[b]], w)

            elif self.model.scores_are_dot_products:  # z linear in the row: a closed gradient
                return fit_rows_linear(
                    fold_in_users(self.model, state, h0, item_lists, weights),
                    share,
                    self.z[self.num_users :],
                    item_lists,
                    self.config.train.l2,
                    self.fold_in_steps,
                    self.config.train.seed,
                )

        elif self.config.model.id_embeddings:

            def embed(b: int, row: torch.Tensor) -> torch.Tensor:
                return h0[b : b + 1] + row

        else:
            return h0  # no propagation and no ID row to fit: placed by text alone
        return fit_rows(
            self.model,
            embed,
            self.z[self.num_users :],
            item_lists,
            self.config.train.l2,
            self.fold_in_steps if state is not None else FIT_STEPS,
            self.config.train.seed,
        )

    def _edge_weights(self, user_row: int, items: np.ndarray) -> np.ndarray:
        """The weights of a user's edges to the item rows ``items``: their trained edges' as
        trained, a new one what one occurrence weighs under ``data.edge_weight = count``
        (another weight of a new interaction is not known: refused)."""
        csr = self._data.graph.csr
        weights = np.full(len(items), np.nan, dtype=np.float32)
        if user_row >= 0:
            start, end = int(csr.indptr[user_row]), int(csr.indptr[user_row + 1])
            trained = csr.indices[start:end].numpy().astype(np.int64)  # sorted node ids
            nodes = np.asarray(items, dtype=np.int64) + self.num_users
            at = np.minimum(np.searchsorted(trained, nodes), max(len(trained) - 1, 0))
            known = (trained[at] == nodes) if len(trained) else np.zeros(len(items), bool)
            weights[known] = csr.values[start:end].numpy()[at[known]]
        spec = self.config.data.edge_weight_spec
        if np.isnan(weights).any():
            if spec.source != "count":
                raise ValueError(
                    f"fold-in of a new interaction is not built for a run weighted by "
                    f"data.edge_weight = {spec}: its weight is not known here (count is); "
                    "recommend for the run's own users, or retrain with the interaction"
                )
            weights[np.isnan(weights)] = np.log1p(1.0) if spec.log1p else 1.0
        return weights

    def _encode(self, texts: list[str]) -> torch.Tensor:
        if not self.config.model.text_features:
            raise ValueError("this model uses no text features, so it cannot place a user by text")
        from gnnrec.encoders import make_encoder

        with self._lock:
            if self._encoder is None:
                self._encoder = make_encoder(self.config.encoder)
            x = self._encoder.encode(texts, progress=False)
        return x.float().to(self.model.device)

    def _rank(self, z: torch.Tensor, seen: list[np.ndarray], k: int) -> list[Ranked]:
        wanted = k + max((len(s) for s in seen), default=0)
        if self._index is not None and wanted <= MAX_CANDIDATES:
            return self._rank_by_index(z, seen, k, wanted)
        exclude = (
            np.repeat(np.arange(len(seen)), [len(s) for s in seen]),
            np.concatenate(seen) if seen else np.zeros(0, dtype=np.int64),
        )
        items, scores = top_k_items(
            z, self.z[self.num_users :], k, exclude=exclude, score=self.model.scores
        )
        return _named((items, scores), self.graph.items.ids)

    def _rank_by_index(
        self, z: torch.Tensor, seen: list[np.ndarray], k: int, wanted: int
    ) -> list[Ranked]:
        """The index's ``wanted`` best candidates, seen items dropped, ``k`` kept."""
        rows, scores = self._index.search(z.cpu().numpy(), wanted)
        ids = self.graph.items.ids
        out = []
        for user_rows, user_scores, own in zip(rows, scores, seen):
            kept = (user_rows >= 0) & ~np.isin(user_rows, own)
            out.append(
                [(ids[r], float(v)) for r, v in zip(user_rows[kept][:k], user_scores[kept][:k])]
            )
        return out

    def _nearest(
        self, query: torch.Tensor, unit: torch.Tensor, selves: list[list[int]], k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        exclude = (
            np.repeat(np.arange(len(selves)), [len(s) for s in selves]),
            np.asarray([r for s in selves for r in s], dtype=np.int64),
        )
        return top_k_items(query, unit, k, exclude=exclude)


def load(
    run_dir: str | Path,
    allow_data_change: bool = False,
    index: IndexConfig | None = None,
    fold_in_steps: int | None = None,
) -> RunHandle:
    """A finished run held in memory (:class:`RunHandle`): its model, graph, final embeddings and
    seen items, loaded once (the data must be what it trained on unless
    ``allow_data_change``)."""
    from gnnrec.run import load_run
    from gnnrec.versions import VERSIONS, current_version

    name = current_version(run_dir)  # read once: an update may make another current meanwhile
    folder = Path(run_dir) if name is None else Path(run_dir) / VERSIONS / name
    config, prepared, model = load_run(folder, allow_data_change=allow_data_change)
    handle = RunHandle(Path(run_dir), config, prepared, model, index, fold_in_steps)
    handle.version_name = name or TRAINED
    return handle


def _graph_state(model: Recommender, data) -> GraphState:
    """Each layer's inputs over the whole training graph and every node's column scale."""
    device = model.device
    view = GraphView.of(data.graph.csr).to(device)
    has_edges = (data.graph.csr.degree() > 0).to(device)
    nodes = torch.arange(data.graph.num_nodes, device=device)
    x = None if data.features is None else data.features.to(device)
    states = model.layer_states(nodes, x, view, has_edges)
    return GraphState(
        states, view.col_scale, data.num_users, data.graph.weighted, view.relation_col_scale
    )


def _named(ranked: tuple[torch.Tensor, torch.Tensor], ids: Sequence[str]) -> list[Ranked]:
    """Rows of ``(indices [B, k], scores [B, k])`` as ``(id, score)`` lists; excluded entries
    (scored ``-inf``, when fewer than ``k`` are left) dropped."""
    items, scores = ranked
    return [
        [(ids[int(i)], float(s)) for i, s in zip(row_items, row_scores) if s != -torch.inf]
        for row_items, row_scores in zip(items.tolist(), scores.tolist())
    ]
