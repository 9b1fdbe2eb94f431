"""Runs a sharded encoding on a local Ray cluster (a script, so a test can kill it)."""

from __future__ import annotations

import sys


def texts_for_test(count: int) -> list[str]:
    """``count`` short texts, one of them empty and one far longer than the model's limit."""
    texts = [
        f"Title: Story {i}. Genres: {('space', 'cooking', 'horses')[i % 3]}." for i in range(count)
    ]
    texts[3], texts[4] = "", "very long " * 500
    return texts


if __name__ == "__main__":
    from gnnrec.encoders import EncoderConfig
    from gnnrec.encoders.sharded import encode_sharded

    folder, count, shard_size, workers = sys.argv[1], *map(int, sys.argv[2:5])
    texts = [
        f"Title: Story {i}. Genres: {('space', 'cooking', 'horses')[i % 3]}." for i in range(count)
    ]
    texts[3], texts[4] = "", "very long " * 500
    config = EncoderConfig(num_workers=workers, shard_size=shard_size, batch_size=8)
    features = encode_sharded(texts, folder, config, progress=False)
    print(f"DONE {features.shape[0]} {features.shape[1]}", flush=True)
