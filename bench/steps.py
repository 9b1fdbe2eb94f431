"""Training steps: one process, sampled training with ID embeddings on a synthetic log, timed
through the trainer's own loop (background sampling included), for each ID optimizer, with and
without huge pages, and for the code of an earlier commit in the same run.

    gnnrec bench steps [--users 1000000 --items 100000 --per-user 10] [--baseline REV]

The log is ``gnnrec synth``'s (made once in ``--data``); the run is the default sampled model
(3 layers, fanouts [10, 10, 10], batch 2048, IDs only). Each configuration runs in a process
of its own (the huge-page switch is read at torch's first allocation): the median wall time of
``--steps`` steps after ``--warmup``, CPU time per step and peak RSS. ``--baseline REV``
measures the tree of commit ``REV`` (``git archive``) alike, with its default optimizer.
JSON rows, a markdown table and a bar plot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The child runs against an earlier tree too: nothing of gnnrec is imported at module level.

OPTIMIZERS = ("adam", "rowwise_adagrad")
PACKAGES = ("bench", "common", "data", "distributed", "encoders", "kernels", "train")


def child(args: argparse.Namespace) -> dict:
    """Times the steps in this process; uses only what every tree measured has (no
    ``train.steps_per_epoch``: the loop is stopped from its step callback)."""
    import resource
    import statistics
    import time

    from gnnrec.common.run_lock import LOCK_FILE, remove_run_dir
    from gnnrec.config import load_config
    from gnnrec.pipeline import model_for, prepare
    from gnnrec.train.trainer import Trainer

    run_dir = Path(args.run_dir)
    overrides = [
        f'run_dir="{run_dir}"',
        "data.dataset=synthetic",
        f'data.path="{args.data}"',
        "model.text_features=false",
        "train.mode=sampled",
        "train.progress=false",
        "train.epochs=1",
    ]
    if args.child != "default":
        overrides.append(f"train.id_optimizer={args.child}")
    config = load_config(None, overrides)
    data = prepare(config).data
    stamps: list[tuple[float, float]] = []

    class Enough(Exception):
        pass

    def on_step(*_) -> None:
        stamps.append((time.perf_counter(), time.process_time()))
        if len(stamps) > args.warmup + args.steps:
            raise Enough

    remove_run_dir(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / LOCK_FILE).touch()  # a run directory, which the next measurement may remove
    trainer = Trainer(model_for(config, data), data, config.train, run_dir, on_step=on_step)
    try:
        trainer.train()
    except Enough:
        pass
    pairs = list(zip(stamps, stamps[1:]))[args.warmup :]
    steps_per_epoch = -(-len(data.train[0]) // config.train.batch_size)
    if not pairs:
        raise ValueError(
            f"an epoch of this data has {steps_per_epoch} steps, too few to time --steps "
            f"{args.steps} after --warmup {args.warmup}: give more --users or --per-user"
        )
    wall = [b[0] - a[0] for a, b in pairs]
    cpu = [b[1] - a[1] for a, b in pairs]
    return {
        "seconds_per_step": statistics.median(wall),
        "mean_seconds_per_step": statistics.mean(wall),
        "cpu_seconds_per_step": statistics.median(cpu),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "training_pairs": len(data.train[0]),
        "steps_per_epoch": steps_per_epoch,
    }


def _tree_of(rev: str, folder: Path) -> Path:
    """An importable copy of commit ``rev``: ``folder/gnnrec`` with its layers linked in."""
    tree = folder / "tree"
    tree.mkdir(parents=True)
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "archive", rev], cwd=repo, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    package = folder / "pkg" / "gnnrec"
    shutil.copytree(tree / "gnnrec", package)
    for name in PACKAGES:
        (package / name).symlink_to(tree / name)
    return package.parent


def _measure(args, optimizer: str, huge_pages: bool, path: Path | None) -> dict:
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": "1" if huge_pages else "0"}
    if path is not None:  # the earlier tree first on the path
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    argv = ["--child", optimizer, "--data", str(args.data), "--run-dir", str(args.run_dir)]
    argv += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    # this file run by path (an earlier tree has no gnnrec.bench.steps), from the run folder,
    # with nothing of bench/ on the path
    script = f"import runpy, sys; sys.argv = {['steps', *argv]!r}; "
    script += f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')"
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        cwd=args.run_dir.parent,
    )
    if out.returncode == 2:  # the child's own one-line error
        raise ValueError(out.stderr.strip().splitlines()[-1])
    if out.returncode:
        raise RuntimeError(f"{optimizer} (huge pages {huge_pages}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> list[dict]:
    from gnnrec.bench.harness import provenance

    wanted = {"num_users": args.users, "num_items": args.items}
    wanted["interactions_per_user"] = args.per_user
    if (args.data / "manifest.json").exists():  # the log of an earlier run, reused
        spec = json.loads((args.data / "manifest.json").read_text())["spec"]
        if any(spec[key] != value for key, value in wanted.items()):
            raise ValueError(
                f"{args.data} holds another log ({', '.join(f'{k} {spec[k]}' for k in wanted)}):"
                " give another --data, or the same sizes"
            )
    else:
        from gnnrec.data.synthetic import SyntheticSpec, write_synthetic

        spec = SyntheticSpec(
            num_users=args.users, num_items=args.items, interactions_per_user=args.per_user
        )
        write_synthetic(spec, args.data)
    args.run_dir.parent.mkdir(parents=True, exist_ok=True)
    configs = [("this tree", optimizer, None) for optimizer in OPTIMIZERS]
    with tempfile.TemporaryDirectory() as scratch:
        if args.baseline:
            configs.insert(0, (args.baseline, "default", _tree_of(args.baseline, Path(scratch))))
        rows = []
        for code, optimizer, path in configs:
            for huge_pages in (False, True):
                row = {"bench": "steps", "code": code, "id_optimizer": optimizer}
                row |= {"huge_pages": huge_pages, "users": args.users, "items": args.items}
                row |= {"per_user": args.per_user, "timed_steps": args.steps}
                row |= _measure(args, optimizer, huge_pages, path) | provenance()
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.baseline:
        base = {r["huge_pages"]: r["seconds_per_step"] for r in rows if r["code"] == args.baseline}
        for row in rows:
            row["speedup_vs_baseline"] = base[False] / row["seconds_per_step"]
            row["speedup_vs_baseline_same_pages"] = (
                base[row["huge_pages"]] / row["seconds_per_step"]
            )
    return rows


def _label(row: dict) -> str:
    """A bar's name in words: which code (the baseline commit is "earlier code", this run's
    tree is named by its own commit) and which ID optimizer."""
    optimizer = {"default": "its default (dense Adam)", "adam": "dense Adam"}.get(
        row["id_optimizer"], row["id_optimizer"].replace("rowwise_adagrad", "row-wise Adagrad")
    )
    if row["code"] == "this tree":
        return f"measured code ({row.get('git_sha', '')[:7]})\n{optimizer}"
    return f"earlier code ({row['code']}),\nthe baseline\n{optimizer}"


def plot(rows: list[dict], path: Path) -> Path:
    from gnnrec.bench.harness import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    labels = [_label(r) for r in rows if not r["huge_pages"]]
    for offset, pages in ((-0.2, False), (0.2, True)):
        values = [r["seconds_per_step"] for r in rows if r["huge_pages"] == pages]
        x = [i + offset for i in range(len(values))]
        bars = ax.bar(x, values, width=0.4, label="huge pages" if pages else "4 kB pages")
        ax.bar_label(bars, fmt="%.2f s", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("seconds per step (median)")
    ax.set_title(f"sampled training step, one process ({rows[0]['device']})", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        _child_main(argv)
    from gnnrec.bench.arguments import add_output_argument
    from gnnrec.bench.harness import markdown_table, write_results
    from gnnrec.common.flags import whole

    parser = argparse.ArgumentParser(prog="gnnrec bench steps", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=whole(), default=1_000_000)
    parser.add_argument("--items", type=whole(), default=100_000)
    parser.add_argument("--per-user", type=whole(), default=10)
    parser.add_argument("--data", type=Path, default=Path("bench/data/steps_synth"))
    parser.add_argument("--run-dir", type=Path, default=Path("bench/data/steps_run/run"))
    parser.add_argument("--steps", type=whole(), default=20)
    parser.add_argument("--warmup", type=whole(0), default=3)
    parser.add_argument("--baseline", default="", help="a commit to time alike (git archive)")
    add_output_argument(parser, "steps")
    args = parser.parse_args(argv)
    args.data, args.run_dir = args.data.resolve(), args.run_dir.resolve()
    rows = run(args)
    out = write_results(rows, args.output)
    print(f"{rows[0]['device']}, {rows[0]['cpu_count']} CPUs, torch {rows[0]['torch']}")
    columns = ["code", "id_optimizer", "huge_pages", "seconds_per_step", "cpu_seconds_per_step"]
    columns += ["peak_rss_gb", "speedup_vs_baseline", "speedup_vs_baseline_same_pages"]
    print(markdown_table(rows, columns))
    print(f"written: {out}, {plot(rows, out.with_suffix('.png'))}")
    return rows


def _child_main(argv: list[str]) -> None:
    """The measuring process, of an earlier tree too: plain arguments (the parent checked
    them); prints its row, or one line of error and exits 2."""
    parser = argparse.ArgumentParser()
    for flag in ("--child", "--data", "--run-dir"):
        parser.add_argument(flag)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--warmup", type=int)
    args = parser.parse_args(argv)
    args.data, args.run_dir = Path(args.data).resolve(), Path(args.run_dir).resolve()
    try:
        row = child(args)
    except ValueError as err:
        print(err, file=sys.stderr, flush=True)
        os._exit(2)
    print(json.dumps(row), flush=True)
    # An earlier tree's sampling thread may still be inside torch: leave without the
    # interpreter's shutdown (the row is out).
    os._exit(0)


if __name__ == "__main__":
    main()
