"""Plots people would rather look at than JSON: the training curve."""

from __future__ import annotations

from pathlib import Path


def plot_training_curve(history: list[dict], path: str | Path) -> Path:
    """Loss and validation metrics per epoch, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row["loss"] for row in history], marker="o")
    left.set(xlabel="epoch", ylabel="training loss", title="loss")
    keys = sorted({k for row in history for k in row if k.startswith("valid_")})
    for key in keys:
        points = [(row["epoch"], row[key]) for row in history if key in row]
        right.plot(*zip(*points), marker="o", label=key.removeprefix("valid_"))
    right.set(xlabel="epoch", title="validation")
    if keys:
        right.legend()
    else:
        right.text(0.5, 0.5, "no validation set", ha="center", transform=right.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
