"""Ingest: an interaction table to a graph's arrays, by the row-by-row reader, the columnar one
and pyarrow alone (read + dictionary-encode both id columns), on the same file, in one run.

    gnnrec bench ingest [--rows 10000000] [--big-rows 100000000] [--readers rows columnar arrow]

The table is CSV with string user ids (``u<k>``, rows/10 of them), integer-like item ids
(rows/100), a rating and a timestamp. Each reader runs in a process of its own, so its peak RSS
is its own. ``--big-rows``: a second, larger table (Parquet parts) read by the columnar reader
alone. JSON rows, a markdown table and a bar plot of rows/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, pyplot, save_figure, write_results
from gnnrec.common.flags import whole

READERS = ("rows", "columnar", "arrow")


def write_table(path: Path, rows: int, seed: int = 0, parts: int = 1) -> Path:
    """A synthetic interaction table of ``rows`` rows: one CSV (``parts == 1``) or a folder of
    ``parts`` Parquet files."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    if parts > 1:
        path.mkdir(parents=True, exist_ok=True)
    for part in range(parts):
        n = rows // parts + (part < rows % parts)
        users = pa.array(rng.integers(0, max(rows // 10, 1), n)).cast(pa.string())
        table = pa.table(
            {
                "user_id": pc.binary_join_element_wise("u", users, ""),
                "item_id": pa.array(rng.integers(0, max(rows // 100, 1), n)).cast(pa.string()),
                "rating": rng.integers(1, 6, n).astype(np.float64),
                "timestamp": rng.integers(0, 2_000_000_000, n),
            }
        )
        if parts > 1:
            import pyarrow.parquet as pq

            pq.write_table(table, path / f"part-{part:05d}.parquet")
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, path)
    return path


def read(reader: str, path: Path) -> dict:
    """Reads ``path`` with one reader in this process: seconds, rows, users, items, peak RSS."""
    from gnnrec.data import ColumnMapping, load_table
    from gnnrec.data.table_rows import load_table_rows

    mapping = ColumnMapping(rating="rating", timestamp="timestamp")
    began = time.perf_counter()
    if reader == "arrow":
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(path)
        encoded = [pc.dictionary_encode(table[c].combine_chunks()) for c in ("user_id", "item_id")]
        rows, counts = table.num_rows, tuple(len(e.dictionary) for e in encoded)
    else:
        graph = (load_table if reader == "columnar" else load_table_rows)(path, mapping=mapping)
        rows, counts = len(graph.interactions), (graph.num_users, graph.num_items)
    seconds = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "rows": rows,
        "users": counts[0],
        "items": counts[1],
        "peak_rss_mb": peak_mb,
    }


def _read_apart(reader: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "gnnrec.bench.ingest", "--child", reader, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"ingest reader {reader!r} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> list[dict]:
    folder = Path(args.workdir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    tables = [(args.rows, 1, list(args.readers))]
    if args.big_rows:
        tables.append((args.big_rows, args.big_parts, ["columnar"]))
    for count, parts, readers in tables:
        path = folder / (f"ingest-{count}.csv" if parts == 1 else f"ingest-{count}")
        if not path.exists():
            began = time.perf_counter()
            write_table(path, count, parts=parts)
            print(f"wrote {path} in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        size = sum(p.stat().st_size for p in ([path] if parts == 1 else path.iterdir()))
        measured = {reader: _read_apart(reader, path) for reader in readers}
        for reader, result in measured.items():
            row = {
                "bench": "ingest",
                "reader": reader,
                "table": "CSV" if parts == 1 else f"Parquet x{parts}",
                "file_mb": size / 2**20,
                **result,
                "rows_per_s": result["rows"] / result["seconds"],
                **provenance(),
            }
            for base in ("rows", "arrow"):
                if base in measured and reader != base:
                    row[f"speed_vs_{base}"] = measured[base]["seconds"] / result["seconds"]
            rows.append(row)
    return rows


def plot(rows: list[dict], path: Path) -> Path:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(9, 3.8))
    labels = [f"{r['reader']}\n{r['rows']:,} rows\n{r['table']}" for r in rows]
    bars = ax.bar(labels, [r["rows_per_s"] / 1e6 for r in rows])
    ax.bar_label(bars, labels=[f"{r['seconds']:.1f} s" for r in rows], fontsize=8)
    ax.set(ylabel="million rows / s", title=f"Interaction table ingest ({rows[0]['device']})")
    ax.tick_params(axis="x", labelsize=8)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="gnnrec bench ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=whole(), default=10_000_000)
    parser.add_argument("--readers", nargs="+", default=list(READERS), choices=READERS)
    parser.add_argument(
        "--big-rows", type=whole(0), default=0, help="a second table, columnar only"
    )
    parser.add_argument("--big-parts", type=whole(), default=20, help="Parquet parts of that table")
    parser.add_argument("--workdir", default="bench/data", help="where the tables are written")
    add_output_argument(parser, "ingest")
    parser.add_argument("--child", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(read(args.child[0], Path(args.child[1]))))
        return []
    rows = run(args)
    out = write_results(rows, args.output)
    print(f"{rows[0]['device']}, {rows[0]['cpu_count']} CPUs")
    columns = ["reader", "table", "rows", "seconds", "rows_per_s", "peak_rss_mb"]
    print(markdown_table(rows, [*columns, "speed_vs_rows", "speed_vs_arrow"]))
    print(f"written: {out}, {plot(rows, out.with_suffix('.png'))}")
    return rows


if __name__ == "__main__":
    main()
