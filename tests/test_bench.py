"""The benchmark scripts run at a tiny size, so they cannot rot."""

from __future__ import annotations

import json

from gnnrec.bench import sampling


def test_sampling_bench_writes_rows_with_provenance(tmp_path, capsys):
    out = tmp_path / "sampling.jsonl"
    rows = sampling.main(
        [
            "--users",
            "300",
            "--items",
            "100",
            "--edges",
            "3000",
            "--batch-size",
            "32",
            "--batches",
            "2",
            "--repeats",
            "1",
            "--output",
            str(out),
        ]
    )
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == rows and rows[0]["sampler"] == "gnnrec NeighborSampler"
    for row in rows:
        assert row["sampled_edges_per_s"] > 0 and row["device"] and row["torch"]
        assert row["config"]["nodes"] == 400
    assert "| gnnrec NeighborSampler |" in capsys.readouterr().out
