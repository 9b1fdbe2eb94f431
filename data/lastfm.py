"""The social-recommendation layout of HetRec 2011 Last.fm (``hetrec2011-lastfm-2k``): users'
listening counts of artists, the users' friendships and the artists' names.

A folder with tab-separated files, each with a header:

- ``user_artists.dat``: ``userID  artistID  weight`` (how often the user played the artist);
- ``user_friends.dat``: ``userID  friendID`` (optional; the friendships, as user–user edges);
- ``artists.dat``: ``id  name  url  pictureURL`` (the items' text: their names; artists no
  one played are kept, as cold items).

The plays become the edge weights with ``data.edge_weight = "weight"`` (best as
``log1p(weight)``: counts are heavy-tailed); ratings are 1.0 (there are none). Users have no
text of their own (their text is built from the artists they played). A bad count, an artist
missing from ``artists.dat`` or a friend who is no user is an error naming its file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gnnrec.data.csv_rows import iter_rows, parse_float
from gnnrec.data.datasets import register_dataset
from gnnrec.data.errors import DataError
from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph

if TYPE_CHECKING:
    from gnnrec.data.config import DataConfig

PLAYS = "weight"  # the column of user_artists.dat that data.edge_weight may name


def _artists(path: Path) -> NodeTable:
    ids, names, seen = [], [], set()
    for line, row in iter_rows(path, ["id", "name"], delimiter="\t"):
        artist = row["id"].strip()
        if artist in seen:
            raise DataError(f"artist {artist!r} is listed twice", path, line)
        seen.add(artist)
        ids.append(artist)
        names.append(row["name"].strip())
    return NodeTable(ids, {"name": names})


def load_lastfm(folder: str | Path, plays_as_weight: bool = False) -> TextGraph:
    """The graph of a HetRec Last.fm folder (see the module docstring); ``plays_as_weight``:
    keep the play counts as the interactions' ``weight`` column."""
    folder = Path(folder)
    artists = _artists(folder / "artists.dat")
    artist_row = {a: n for n, a in enumerate(artists.ids)}
    plays_file = folder / "user_artists.dat"
    user_row: dict[str, int] = {}
    users, items, plays = [], [], []
    for line, row in iter_rows(plays_file, ["userID", "artistID", PLAYS], delimiter="\t"):
        artist = row["artistID"].strip()
        if artist not in artist_row:
            raise DataError(f"artistID {artist!r} is not in artists.dat", plays_file, line)
        count = parse_float(row[PLAYS], PLAYS, plays_file, line)
        if count < 0:
            raise DataError(
                f"{PLAYS} {row[PLAYS]!r} is negative: play counts are >= 0", plays_file, line
            )
        users.append(user_row.setdefault(row["userID"].strip(), len(user_row)))
        items.append(artist_row[artist])
        plays.append(count)
    friendships = None
    friends_file = folder / "user_friends.dat"
    if friends_file.exists():
        pairs = []
        for line, row in iter_rows(friends_file, ["userID", "friendID"], delimiter="\t"):
            ends = [row["userID"].strip(), row["friendID"].strip()]
            for user in ends:
                if user not in user_row:
                    raise DataError(
                        f"user {user!r} played nothing in user_artists.dat: not a user here",
                        friends_file,
                        line,
                    )
            pairs.append([user_row[ends[0]], user_row[ends[1]]])
        friendships = np.asarray(pairs, dtype=np.int64).T.reshape(2, -1)
    count = len(users)
    inter = Interactions(
        np.asarray(users),
        np.asarray(items),
        np.ones(count),
        np.zeros(count),
        np.asarray(plays) if plays_as_weight else None,
    )
    return TextGraph(folder.name, NodeTable(list(user_row)), artists, inter, user_edges=friendships)


@register_dataset("lastfm")
def _load_lastfm_dataset(cfg: DataConfig, path: Path | None) -> tuple[TextGraph, None]:
    """A HetRec Last.fm folder; ``data.edge_weight`` may name its ``weight`` column."""
    return load_lastfm(path, plays_as_weight=cfg.edge_weight_spec.column == PLAYS), None
