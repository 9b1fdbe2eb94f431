"""Plots people would rather look at than JSON: the training curve."""

from __future__ import annotations

from pathlib import Path

from gnnrec.common.atomic_files import atomic_path
from gnnrec.common.log import get_logger

log = get_logger(__name__)


def training_curve_figure(history: list[dict], best_epoch: int | None = None):
    """The figure of :func:`plot_training_curve` (matplotlib's Agg backend), for callers that
    want to add to it or inspect it; ``best_epoch`` (1-based) is marked on both panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row["loss"] for row in history], marker="o")
    left.set(xlabel="epoch", ylabel="training loss", title="loss")
    # Metrics only: the number of users validated ("valid_users") is a count, not a score.
    keys = sorted({k for row in history for k in row if k.startswith("valid_")} - {"valid_users"})
    for key in keys:
        points = [(row["epoch"], row[key]) for row in history if key in row]
        right.plot(*zip(*points), marker="o", label=key.removeprefix("valid_"))
    users = {row["valid_users"] for row in history if "valid_users" in row}
    title = f"validation ({users.pop()} users)" if len(users) == 1 else "validation"
    right.set(xlabel="epoch", ylabel="metric", title=title)
    for axis in (left, right):  # epochs are whole numbers
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best_epoch is not None and best_epoch >= 1:
            axis.axvline(best_epoch, color="tab:green", linestyle="--", linewidth=1)
    if best_epoch is not None and best_epoch >= 1:
        right.plot([], [], color="tab:green", linestyle="--", label=f"kept: epoch {best_epoch}")
    if keys:
        right.legend()
    else:
        right.text(0.5, 0.5, "no validation set", ha="center", transform=right.transAxes)
    fig.tight_layout()
    return fig


def plot_training_curve(
    history: list[dict], path: str | Path, best_epoch: int | None = None
) -> Path | None:
    """Training loss (left) and validation metrics (right) per epoch, the kept ``best_epoch``
    marked, as a PNG; None (and a log line) when matplotlib is not installed (``pip install
    'gnnrec[plots]'``)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("no training_curve.png: matplotlib is not installed (gnnrec[plots])")
        return None
    fig = training_curve_figure(history, best_epoch)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return Path(path)
