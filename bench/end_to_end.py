"""End to end at scale on this machine: a synthetic log with text (``gnnrec synth --parquet``)
through ingest, sampled training with sharded ID tables on Ray workers, sampled evaluation,
recommendations (every user, or a sample) and export; each stage's time and peak memory.

    gnnrec bench end_to_end [--users 1000000] [--items 100000] [--per-user 10] [--workers 2]
        [--steps 1000] [--test-users 10000] [--recommend-users 0] [--folder DIR] [--reuse-data]
        [--output F]

Stages: ``synth``; ``prepare`` (ingest of the Parquet parts and the user/item text tables,
split, graph), ``train``, ``embeddings``, ``evaluate``, ``recommend`` (from the run's
``stages.json``); ``export`` (a command of its own, which loads the data again). Memory: the
proportional set size (PSS: each shared page split among the processes that map it, so Ray's
object store counts once) summed over the command's process and all its descendants (Ray's
services and workers), sampled every second; a stage's peak is the largest sum inside it.
Node features: IDs only (``model.text_features = false``); the text columns are ingested and
kept, not encoded. JSON rows, a markdown table and a bar plot of the stage times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, pyplot, save_figure, write_results
from gnnrec.common.flags import real, whole
from gnnrec.common.run_lock import remove_run_dir

GNNREC = [sys.executable, "-m", "gnnrec.cli"]


class TreeMemory:
    """Samples the summed PSS of a process and its descendants every ``interval`` seconds on a
    thread: ``samples`` holds ``(unix time, bytes)``."""

    def __init__(self, pid: int, interval: float = 1.0):
        import psutil

        self.root, self.interval = psutil.Process(pid), interval
        self.samples: list[tuple[float, int]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._done.wait(self.interval):
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for process in tree:
                try:
                    total += process.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.samples.append((time.time(), total))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def peak(self, start: float = 0.0, end: float = float("inf")) -> int:
        """The largest sample in ``[start, end]`` (0 without one)."""
        return max((b for t, b in self.samples if start <= t <= end), default=0)


def run_measured(args: list[str], log: Path) -> tuple[float, TreeMemory]:
    """Runs ``gnnrec ARGS`` to completion (output to ``log``): wall seconds, its memory."""
    start = time.time()
    with open(log, "w") as out:
        process = subprocess.Popen([*GNNREC, *args], stdout=out, stderr=subprocess.STDOUT)
        memory = TreeMemory(process.pid)
        code = process.wait()
    memory.stop()
    if code:
        raise RuntimeError(f"gnnrec {args[0]} failed ({code}); its output: {log}")
    return time.time() - start, memory


def train_overrides(folder: Path, args: argparse.Namespace) -> list[str]:
    """The run: the ``table`` dataset over the synthetic parts and text tables, IDs only,
    sampled training with row-wise sharded tables, a seeded sample of test users."""
    return [
        "data.dataset=table",
        f"data.path={folder / 'table'}",
        f"data.options.users_path={folder / 'users.csv'}",
        f"data.options.items_path={folder / 'items.csv'}",
        "data.options.rating_column=rating",
        "data.options.timestamp_column=ts",
        'data.options.user_text_columns=["profile"]',
        'data.options.item_text_columns=["title", "description"]',
        "model.text_features=false",
        "model.layers=2",
        "train.mode=sampled",
        "train.fanouts=[10, 5]",
        "train.id_optimizer=rowwise_adagrad",
        "train.epochs=1",
        f"train.steps_per_epoch={args.steps}",
        f"train.batch_size={args.batch_size}",
        "train.valid_users=1000",
        f"train.valid_chunk_nodes={args.chunk_nodes}",
        f"eval.chunk_nodes={args.chunk_nodes}",
        f"eval.test_users={args.test_users}",
        f"eval.recommend_users={args.recommend_users}",
        f"parallel.num_workers={args.workers}",
    ]


def plot_stages(rows: list[dict], path: Path) -> None:
    """One bar per stage of one run's ``rows`` (seconds, labelled with the peak PSS)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    stages = [r for r in rows if r["stage"] != "train command, all"]
    ax.barh([r["stage"] for r in stages], [r["seconds"] for r in stages], color="tab:blue")
    for i, r in enumerate(stages):
        ax.text(r["seconds"], i, f" {r['peak_gb']} GB", va="center", fontsize=8)
    ax.set_xlim(0, 1.15 * max(r["seconds"] for r in stages))  # room for the labels
    ax.invert_yaxis()
    ax.set_xlabel("seconds (label: peak PSS of the command's processes)")
    first = rows[0]
    ax.set_title(
        f"{first['interactions']:,} interactions, {first['workers']} Ray workers, "
        f"{first['steps']} steps",
        fontsize=10,
    )
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="gnnrec bench end_to_end", description=__doc__)
    parser.add_argument("--users", type=whole(), default=1_000_000)
    parser.add_argument("--items", type=whole(), default=100_000)
    parser.add_argument("--per-user", type=real(), default=10.0)
    parser.add_argument("--workers", type=whole(), default=2)
    parser.add_argument("--steps", type=whole(), default=1000)
    parser.add_argument("--batch-size", type=whole(), default=2048)
    parser.add_argument("--test-users", type=whole(), default=10_000)
    parser.add_argument("--recommend-users", type=whole(0), default=0, help="0: every user")
    parser.add_argument(
        "--chunk-nodes",
        type=whole(),
        default=1_000_000,
        help="validation and final embeddings this many nodes at a time (0: the whole graph)",
    )
    parser.add_argument("--folder", type=Path, default=Path("runs/bench-end-to-end"))
    parser.add_argument(
        "--reuse-data", action="store_true", help="the folder's log from an earlier run (no synth)"
    )
    add_output_argument(parser, "end_to_end")
    args = parser.parse_args(argv)
    folder, run_dir = args.folder / "data", args.folder / "run"
    remove_run_dir(run_dir)  # a fresh run, not a resume of an earlier one
    args.folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def record(stage: str, seconds: float, peak: int) -> None:
        rows.append({"stage": stage, "seconds": round(seconds, 2), "peak_gb": round(peak / 1e9, 2)})
        print(f"{stage}: {seconds:.1f} s, peak {peak / 1e9:.2f} GB", flush=True)

    if args.reuse_data and (folder / "manifest.json").exists():
        spec = json.loads((folder / "manifest.json").read_text())["spec"]
        wanted = {"num_users": args.users, "num_items": args.items}
        wanted["interactions_per_user"] = args.per_user
        if any(spec[key] != value for key, value in wanted.items()):
            raise ValueError(f"{folder} holds another log ({spec}): drop --reuse-data")
    else:
        synth = ["synth", "--output", str(folder), "--users", str(args.users)]
        synth += ["--items", str(args.items), "--interactions-per-user", str(args.per_user)]
        synth += ["--parquet", "--overwrite"]
        seconds, memory = run_measured(synth, args.folder / "synth.log")
        record("synth", seconds, memory.peak())
    config = args.folder / "run.toml"
    from gnnrec.config import load_config, save_config

    save_config(load_config(None, [f"run_dir={run_dir}", *train_overrides(folder, args)]), config)
    seconds, memory = run_measured(["train", "--config", str(config)], args.folder / "train.log")
    for stage in json.loads((run_dir / "stages.json").read_text()):
        end = stage["start"] + stage["seconds"]
        record(stage["stage"], stage["seconds"], memory.peak(stage["start"], end))
    record("train command, all", seconds, memory.peak())
    export = ["export", "--run-dir", str(run_dir)]
    seconds, memory = run_measured(export, args.folder / "export.log")
    record("export", seconds, memory.peak())

    manifest = json.loads((folder / "manifest.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    workers = json.loads((run_dir / "workers.json").read_text())
    steps = history[-1]["step"]
    facts = {
        "bench": "end_to_end",
        "users": args.users,
        "items": args.items,
        "interactions": manifest["interactions"],
        "workers": args.workers,
        "batch_size": args.batch_size,
        "steps": steps,
        "train_epoch_seconds": history[-1]["seconds"],
        "seconds_per_step": history[-1]["seconds"] / steps,
        "recall@20": metrics.get("recall@20"),
        "test_user_sample": metrics.get("test_user_sample"),
        "recommend_users": args.recommend_users or args.users,
        "worker_table_share": [w["table_bytes"] / w["table_total_bytes"] for w in workers],
        "features": "IDs only (text ingested, not encoded)",
        **provenance(),
    }
    rows = [{**facts, **row} for row in rows]
    write_results(rows, args.output)
    print(markdown_table(rows, ["stage", "seconds", "peak_gb"]))
    plot_stages(rows, args.output.with_suffix(".png"))
    return rows


if __name__ == "__main__":
    main()
