"""MovieLens loaders: the bundled ml-latest-small, and the 100K and 1M file formats.

Item text is title, genres and (for ml-latest-small) the free-text tags; MovieLens users have no
text of their own, so user text is built later from training interactions only
(:mod:`gnnrec.data.user_text`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gnnrec.data.csv_rows import iter_rows, parse_float, parse_int
from gnnrec.data.datasets import register_dataset
from gnnrec.data.errors import DataError
from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph

if TYPE_CHECKING:
    from gnnrec.data.config import DataConfig

ML_100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def bundled_ml_latest_small() -> Path:
    """The folder of the bundled ml-latest-small copy (its licence is README.txt there)."""
    return Path(str(resources.files("gnnrec.data") / "ml-latest-small"))


def _ratings(path: Path, rows, item_index: dict[str, int], columns: tuple[str, str, str, str]):
    """Interactions and user ids from rating rows; unknown items are reported with their line."""
    user_col, item_col, rating_col, time_col = columns
    user_index: dict[str, int] = {}
    users, items, ratings, times = [], [], [], []
    for line, row in rows:
        item = row[item_col].strip()
        if item not in item_index:
            raise DataError(f"{item_col} {item!r} is not in the item table", path, line)
        user = row[user_col].strip()
        parse_int(user, user_col, path, line)
        users.append(user_index.setdefault(user, len(user_index)))
        items.append(item_index[item])
        ratings.append(parse_float(row[rating_col], rating_col, path, line))
        times.append(parse_int(row[time_col], time_col, path, line))
    order = sorted(user_index, key=int)
    remap = np.empty(len(order), dtype=np.int64)
    for new, user in enumerate(order):
        remap[user_index[user]] = new
    inter = Interactions(
        remap[np.asarray(users, dtype=np.int64)], np.asarray(items), ratings, times
    )
    return order, inter


def _headerless_ratings(
    path: Path, delimiter: str, item_ids: list[str]
) -> tuple[list[str], Interactions]:
    """``user item rating timestamp`` rows without a header (MovieLens 100K and 1M)."""
    columns = ("user_id", "item_id", "rating", "timestamp")
    rows = iter_rows(path, columns, delimiter=delimiter, header=False, encoding="latin-1")
    return _ratings(path, rows, {m: i for i, m in enumerate(item_ids)}, columns)


def _with_profiles(
    user_ids: list[str],
    path: Path,
    columns: list[str],
    delimiter: str,
    describe: Callable[[dict[str, str]], str],
) -> NodeTable:
    """The user table, with a ``profile`` text field from a (latin-1) user file if present."""
    if not path.exists():
        return NodeTable(user_ids)
    rows = iter_rows(path, columns, delimiter=delimiter, header=False, encoding="latin-1")
    profiles = {row["user_id"].strip(): describe(row) for _, row in rows}
    return NodeTable(user_ids, {"profile": [profiles.get(u, "") for u in user_ids]})


class _Catalogue:
    """Movie ids in file order; a repeated id is an error naming its line (two rows for one
    movie would leave one of them a phantom item that no rating reaches)."""

    def __init__(self, path: Path, column: str) -> None:
        self.path, self.column = path, column
        self.ids: list[str] = []
        self._seen: set[str] = set()

    def add(self, movie: str, line: int) -> None:
        parse_int(movie, self.column, self.path, line)
        if movie in self._seen:
            raise DataError(f"{self.column} {movie!r} appears twice", self.path, line)
        self._seen.add(movie)
        self.ids.append(movie)


def load_ml_latest_small(path: str | Path | None = None) -> TextGraph:
    """ml-latest-small (or any ml-latest folder): ``movies.csv``, ``ratings.csv``, ``tags.csv``.

    Every movie of ``movies.csv`` is an item, rated or not (unrated ones are text-only items).
    """
    folder = Path(path) if path is not None else bundled_ml_latest_small()
    movies = folder / "movies.csv"
    catalogue, titles, genres = _Catalogue(movies, "movieId"), [], []
    for line, row in iter_rows(movies, ["movieId", "title", "genres"]):
        catalogue.add(row["movieId"].strip(), line)
        titles.append(row["title"].strip())
        genre = row["genres"].strip()
        genres.append("" if genre == "(no genres listed)" else genre.replace("|", ", "))
    ids = catalogue.ids
    item_index = {m: i for i, m in enumerate(ids)}
    tags: dict[int, dict[str, None]] = defaultdict(dict)
    tag_file = folder / "tags.csv"
    if tag_file.exists():
        for line, row in iter_rows(tag_file, ["movieId", "tag"]):
            movie = row["movieId"].strip()
            if movie not in item_index:
                raise DataError(f"movieId {movie!r} is not in movies.csv", tag_file, line)
            tags[item_index[movie]].setdefault(row["tag"].strip().lower())
    ratings = folder / "ratings.csv"
    user_ids, inter = _ratings(
        ratings,
        iter_rows(ratings, ["userId", "movieId", "rating", "timestamp"]),
        item_index,
        ("userId", "movieId", "rating", "timestamp"),
    )
    items = NodeTable(
        ids,
        {"title": titles, "genres": genres, "tags": [", ".join(tags[i]) for i in range(len(ids))]},
    )
    return TextGraph(folder.name, NodeTable(user_ids), items, inter)


def load_ml_100k(path: str | Path) -> TextGraph:
    """MovieLens 100K: ``u.data`` (tab-separated), ``u.item`` and ``u.user`` (``|``, latin-1)."""
    folder = Path(path)
    item_file = folder / "u.item"
    item_cols = ["movie_id", "title", "release", "video_release", "url", *ML_100K_GENRES]
    catalogue, titles, genres = _Catalogue(item_file, "movie_id"), [], []
    for line, row in iter_rows(
        item_file, item_cols, delimiter="|", header=False, encoding="latin-1"
    ):
        catalogue.add(row["movie_id"].strip(), line)
        titles.append(row["title"].strip())
        genres.append(", ".join(g for g in ML_100K_GENRES[1:] if row[g].strip() == "1"))
    ids = catalogue.ids
    user_ids, inter = _headerless_ratings(folder / "u.data", "\t", ids)
    users = _with_profiles(
        user_ids,
        folder / "u.user",
        ["user_id", "age", "gender", "occupation", "zip"],
        "|",
        lambda row: f"{row['age']}-year-old {row['gender']}, {row['occupation']}",
    )
    return TextGraph(folder.name, users, NodeTable(ids, {"title": titles, "genres": genres}), inter)


def load_ml_1m(path: str | Path) -> TextGraph:
    """MovieLens 1M: ``ratings.dat``, ``movies.dat``, ``users.dat`` (``::``-separated, latin-1)."""
    folder = Path(path)
    movies = folder / "movies.dat"
    catalogue, titles, genres = _Catalogue(movies, "movie_id"), [], []
    for line, row in iter_rows(
        movies, ["movie_id", "title", "genres"], delimiter="::", header=False, encoding="latin-1"
    ):
        catalogue.add(row["movie_id"].strip(), line)
        titles.append(row["title"].strip())
        genres.append(row["genres"].strip().replace("|", ", "))
    ids = catalogue.ids
    user_ids, inter = _headerless_ratings(folder / "ratings.dat", "::", ids)
    users = _with_profiles(
        user_ids,
        folder / "users.dat",
        ["user_id", "gender", "age", "occupation", "zip"],
        "::",
        lambda row: f"gender {row['gender']}, age group {row['age']}",
    )
    return TextGraph(folder.name, users, NodeTable(ids, {"title": titles, "genres": genres}), inter)


@register_dataset("ml-latest-small", needs_path=False)
def _load_ml_latest_small(cfg: DataConfig, path: Path | None) -> tuple[TextGraph, None]:
    return load_ml_latest_small(path), None


@register_dataset("ml-100k")
def _load_ml_100k(cfg: DataConfig, path: Path | None) -> tuple[TextGraph, None]:
    return load_ml_100k(path), None


@register_dataset("ml-1m")
def _load_ml_1m(cfg: DataConfig, path: Path | None) -> tuple[TextGraph, None]:
    return load_ml_1m(path), None
