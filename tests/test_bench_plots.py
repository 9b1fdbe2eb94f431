"""The benchmark pictures say what they show: layouts and modes in words, baselines named as
such, values as people write them, models sorted, sampling split from the rest of a step."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def rows_of(name: str) -> list[dict]:
    return [json.loads(line) for line in (RESULTS / f"{name}.jsonl").read_text().splitlines()]


@pytest.fixture(autouse=True)
def keep_figures(monkeypatch):
    """Each plot's figure, kept open for the test instead of closed after saving."""
    import importlib

    figures = []

    def save(fig, path):
        figures.append(fig)
        fig.savefig(path)
        return Path(path)

    for name in ("harness", "attention", "distributed", "epoch", "quality", "relations"):
        monkeypatch.setattr(importlib.import_module(f"gnnrec.bench.{name}"), "save_figure", save)
    yield figures
    for fig in figures:
        plt.close(fig)


def texts(fig) -> list[str]:
    found = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()]
    found += [t.get_text() for ax in fig.axes for t in ax.texts]
    found += [ax.get_title(loc) for ax in fig.axes for loc in ("left", "center")]
    return found


def test_distributed_names_its_mode_and_counts_workers_in_words(keep_figures, tmp_path):
    from gnnrec.bench import distributed

    distributed.plot(rows_of("distributed"), tmp_path / "d.png")
    fig = keep_figures[-1]
    labels = texts(fig)
    assert "1 Ray worker" in labels and not any("1 Ray workers" in t for t in labels)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["full training", "sampled training"]


def test_steps_names_the_baseline_in_words(keep_figures, tmp_path):
    from gnnrec.bench import steps

    steps.plot(rows_of("steps"), tmp_path / "s.png")
    labels = texts(keep_figures[-1])
    assert any(t.startswith("earlier code (") and "the baseline" in t for t in labels)


def test_attention_values_are_written_as_people_write_them(keep_figures, tmp_path):
    from gnnrec.bench import attention

    rows = [r for r in rows_of("attention") if r.get("bench") == "attention"]
    attention.plot([r for r in rows if r["git_sha"] == rows[-1]["git_sha"]], tmp_path / "a.png")
    values = [t for t in texts(keep_figures[-1]) if t[:1].isdigit()]
    assert values and not any("e+" in t for t in values)
    assert "4,956" in values


def test_quality_is_sorted_best_first_with_ndcg(keep_figures, tmp_path):
    from gnnrec.bench import quality

    quality.plot(rows_of("quality"), tmp_path / "q.png")
    fig = keep_figures[-1]
    for ax in fig.axes:
        from matplotlib.container import BarContainer

        bars = [c for c in ax.containers if isinstance(c, BarContainer)]
        recall = [bar.get_height() for bar in bars[0]]
        assert recall == sorted(recall, reverse=True)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Recall@20", "NDCG@20"]


def test_relations_write_each_verdict_above_its_error_bar(keep_figures, tmp_path):
    from gnnrec.bench import relations

    rows = rows_of("relations") + rows_of("relations_cost")
    relations.plot(rows, tmp_path / "r.png")
    fig = keep_figures[-1]
    verdicts = [t for ax in fig.axes for t in ax.texts if t.get_text() in ("win", "tie", "loss")]
    assert len(verdicts) == 2 * sum(1 for r in rows if "recall@20_verdict" in r)
    for ax in fig.axes:  # each verdict above the top of the error bar at its x
        tops = {}
        for bars in ax.containers:
            if getattr(bars, "errorbar", None) is not None:
                for segment in bars.errorbar.lines[2][0].get_segments():
                    tops[round(float(segment[0][0]), 6)] = float(segment[:, 1].max())
        for text in ax.texts:
            if text.get_text() in ("win", "tie", "loss"):
                x, y = text.get_position()
                assert y > tops[round(float(x), 6)]
    legend = [
        t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()
    ]
    assert "edge_weight = rating" in legend and "+ friendships, typed" in legend
    assert any("10,071,499 interactions" in t for t in texts(fig))


def test_epoch_splits_sampling_from_the_rest_of_the_step(keep_figures, tmp_path):
    from gnnrec.bench import epoch

    epoch.plot(rows_of("epoch"), tmp_path / "e.png")
    fig = keep_figures[-1]
    ax = fig.axes[0]
    sampling, rest = ax.containers[0], ax.containers[1]
    assert len(sampling) == len(rest) >= 2
    assert all(s.get_width() < r.get_width() for s, r in zip(sampling, rest))
    assert any(t.startswith(" sampling ") for t in texts(fig))
