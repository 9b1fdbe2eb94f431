"""What many test modules share (no test module imports another): run configurations on the
planted dataset (written by ``conftest.write_planted_dataset``) and the CLI's one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from gnnrec.config import load_config

SHARDED = ("train.id_optimizer=rowwise_adagrad", "train.id_lr=0.1")  # row-wise ID tables


def planted_overrides(planted_dir: Path, cache: Path) -> list[str]:
    """Config overrides that point a run at the planted dataset, small and fast."""
    return [
        "data.dataset=table",
        f'data.path="{planted_dir / "interactions.csv"}"',
        f'data.options.items_path="{planted_dir / "items.csv"}"',
        'data.options.rating_column="rating"',
        'data.options.timestamp_column="ts"',
        'data.options.item_text_columns=["title", "genre"]',
        f'encoder.cache_dir="{cache}"',
        "model.hidden=16",
        "model.layers=2",
        "train.epochs=8",
        "train.batch_size=64",
        "train.lr=0.02",
        "train.progress=false",
        "train.patience=8",
    ]


def planted_sets(planted_dir: Path, cache: Path, *extra: str) -> list[str]:
    """The planted run's overrides (and ``extra``) as CLI flags: ``--set KEY=VALUE`` each."""
    items = [*planted_overrides(planted_dir, cache), *extra]
    return [flag for item in items for flag in ("--set", item)]


def planted_config(planted_dir: Path, cache: Path, run_dir: Path, *extra: str):
    return load_config(
        None, [f'run_dir="{run_dir}"', *planted_overrides(planted_dir, cache), *extra]
    )


def error_line(capsys, code: int) -> str:
    """The one ``gnnrec CMD: error: ...`` line of a CLI call that failed as it should: exit 2,
    no traceback (progress bars aside, nothing else starts with "gnnrec ")."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("gnnrec ")]
    assert len(lines) == 1 and ": error: " in lines[0], err
    return lines[0]


def parse_refusal(capsys, argv: list[str]) -> str:
    """The error line of a CLI call that argparse refuses (a flag's value out of its range):
    it exits 2 before any work."""
    from gnnrec.cli import main

    try:
        code = main(argv)
    except SystemExit as parsed:
        code = parsed.code
    return error_line(capsys, code)


def trained_model(run_dir: Path) -> dict[str, torch.Tensor]:
    """The weights a run kept (``model.pt``)."""
    return torch.load(run_dir / "model.pt", weights_only=True)["model"]


def assert_same_model(a: dict, b: dict, **tolerance) -> None:
    """Two state dicts with the same keys and values (to ``torch.testing``'s tolerance, or the
    one given)."""
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], **tolerance)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_genre_tables(planted_dir: Path, folder: Path) -> Path:
    """The planted items' genres as a ``genre`` node table (with a description) and an
    ``item -> genre`` edge table, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(planted_dir / "items.csv") as f:
        items = list(csv.DictReader(f))
    genres = sorted({row["genre"] for row in items})
    write_csv(
        folder / "genres.csv", ["id", "about"], [[f"g_{g}", f"stories of {g}"] for g in genres]
    )
    write_csv(
        folder / "item_genres.csv",
        ["src", "dst"],
        [[r["item_id"], f"g_{r['genre']}"] for r in items],
    )
    return folder


def entity_overrides(folder: Path, **edge) -> list[str]:
    """Config overrides reading :func:`write_genre_tables`' tables (``edge``: changes to the
    edge table's entry)."""
    nodes = f'{{type="genre", path="{folder / "genres.csv"}", text_columns=["about"]}}'
    spec = {
        "path": str(folder / "item_genres.csv"),
        "source": "item",
        "target": "genre",
        "relation": "has_genre",
        "reverse": "genre_of",
        **edge,
    }
    table = ", ".join(f'{k}="{v}"' for k, v in spec.items())
    return [f"data.options.node_tables=[{nodes}]", f"data.options.edge_tables=[{{{table}}}]"]


def check_hetero_batch(batch, store, x: dict[str, torch.Tensor]) -> None:
    """A PyG hetero batch over our stores: features read for the right rows of every node
    type; every sampled edge an edge of its type, ``e_id`` pointing at it in ``to_hetero``'s
    order (so its weight, when the store has weights, lines up)."""
    hetero = store.to_hetero()
    for node_type in batch.node_types:
        assert torch.equal(batch[node_type].x, x[node_type][batch[node_type].n_id])
    for edge_type in batch.edge_types:
        src, _, dst = edge_type
        e = batch[edge_type].edge_index
        pairs = torch.stack([batch[src].n_id[e[0]], batch[dst].n_id[e[1]]])
        assert torch.equal(hetero[edge_type].edge_index[:, batch[edge_type].e_id], pairs)
        if "edge_weight" in hetero[edge_type]:
            assert bool((hetero[edge_type].edge_weight[batch[edge_type].e_id] > 0).all())
