"""The training curve shows metrics on the metrics axis (the validated user count is in the
title, not a line at 610 that flattens Recall and NDCG to 0)."""

from __future__ import annotations

import matplotlib.pyplot as plt

from gnnrec.plots import plot_training_curve, training_curve_figure

HISTORY = [
    {"epoch": e, "loss": 1.0 / e, "valid_recall@20": 0.1 * e, "valid_ndcg@20": 0.05 * e}
    | {"valid_users": 610}
    for e in (1, 2, 3)
]


def test_validation_axis_holds_metrics_only():
    fig = training_curve_figure(HISTORY)
    right = fig.axes[1]
    assert sorted(line.get_label() for line in right.get_lines()) == ["ndcg@20", "recall@20"]
    assert max(max(line.get_ydata()) for line in right.get_lines()) <= 1.0
    assert right.get_title() == "validation (610 users)"
    plt.close(fig)


def test_curve_is_written_as_png(tmp_path):
    path = plot_training_curve(HISTORY, tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_kept_epoch_is_marked(tmp_path):
    fig = training_curve_figure(HISTORY, best_epoch=2)
    for axis in fig.axes:
        marks = [line for line in axis.get_lines() if list(line.get_xdata()) == [2, 2]]
        assert len(marks) == 1  # the vertical line at epoch 2
    assert "kept: epoch 2" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    plt.close(fig)
    path = plot_training_curve(HISTORY, tmp_path / "curve.png", best_epoch=2)
    assert path.stat().st_size > 0
