"""What many test modules share (no test module imports another): run configurations on the
planted dataset (written by ``conftest.write_planted_dataset``)."""

from __future__ import annotations

from pathlib import Path

from gnnrec.config import load_config


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


def planted_config(planted_dir: Path, cache: Path, run_dir: Path, *extra: str):
    return load_config(
        None, [f'run_dir="{run_dir}"', *planted_overrides(planted_dir, cache), *extra]
    )
