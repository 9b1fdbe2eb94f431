"""The ``gnnrec`` command line.

Commands that read a configuration take ``--config FILE.toml`` and ``--set section.key=value``
overrides on top of a recipe (``--recipe``, default ``ml_latest_small_cpu``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from contextlib import nullcontext
from pathlib import Path

import tomli_w

from gnnrec import __version__
from gnnrec.cli_errors import explain
from gnnrec.common.log import log_to_console
from gnnrec.common.run_lock import run_dir_lock
from gnnrec.config import add_override_argument, load_config
from gnnrec.recipes import RECIPES

DESCRIPTION = """Graph recommendation with LLM node features: user and item text encoded into
node features, a GCN trained on the user-item graph (one process or Ray workers), every item
ranked for every user, cold-start users and items included."""

EPILOG = """examples:
  gnnrec demo                                   train on the bundled MovieLens data
  gnnrec train --run-dir runs/a --set train.epochs=50
  gnnrec recommend --run-dir runs/a -k 20 --output top20.parquet
  gnnrec config show --set model.hidden=128    the effective configuration, as TOML
run `gnnrec COMMAND --help` for a command's options."""

DEMO_USER_TEXT = (
    "I love animated family films and Pixar movies, with adventure, humour and "
    "talking toys or animals."
)


def _allow_data_change(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-data-change",
        action="store_true",
        help="use a run with data that differs from what it trained on (its data.json)",
    )


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with [data], [model], ... tables")
    parser.add_argument("--recipe", default="ml_latest_small_cpu", choices=sorted(RECIPES))
    parser.add_argument("--run-dir", help="run directory (config run_dir)")
    add_override_argument(parser, "override, e.g. --set train.epochs=5")


def _config(args: argparse.Namespace):
    """The recipe, then the TOML file, then the overrides. Without ``--config``, an existing
    run directory's own ``config.toml`` is the file, so ``--run-dir`` alone resumes a run."""
    overrides = list(args.overrides)
    config_file = args.config
    if args.run_dir is not None:  # an empty one is an error (RunConfig), never the default
        overrides.append(f"run_dir={json.dumps(args.run_dir)}")
        saved = Path(args.run_dir) / "config.toml"
        if config_file is None and saved.exists():
            config_file = saved
    return load_config(config_file, overrides, base=RECIPES[args.recipe]())


def _print_metrics(metrics: dict) -> None:
    pop = metrics["baselines"]["popularity"]
    print(f"\n{'model':<28}{'Recall@20':>10}{'NDCG@20':>10}")
    print(f"{metrics['model_label']:<28}{metrics['recall@20']:>10.4f}{metrics['ndcg@20']:>10.4f}")
    print(f"{'popularity baseline':<28}{pop['recall@20']:>10.4f}{pop['ndcg@20']:>10.4f}")
    if "cold" in metrics:
        cold = metrics["cold"]
        label = f"{metrics['model_label'].split(' on ')[0]}, cold items only"  # "GAT, cold ..."
        print(
            f"{label:<28}{cold['recall@20']:>10.4f}{cold['ndcg@20']:>10.4f}"
            f"   ({cold['n_cold_items']} items with no training interactions)"
        )
    sample = metrics.get("test_user_sample")
    drawn = f", drawn from {sample['of']} test users, seed {sample['seed']}" if sample else ""
    print(
        f"users evaluated: {metrics['n_users_evaluated']} ({metrics['dataset']}, "
        f"{metrics['split']} split{drawn})"
    )
    if "trained_on" in metrics:
        print(f"trained on: {metrics['trained_on']}")


def cmd_train(args: argparse.Namespace) -> dict:
    from gnnrec.run import train_run

    for key in ("num_workers", "address"):
        value = getattr(args, key, None)
        if value is not None:
            args.overrides.append(f"parallel.{key}={json.dumps(value)}")
    config = _config(args)
    metrics = train_run(config, allow_data_change=args.allow_data_change)
    _print_metrics(metrics)
    print(f"run directory: {config.run_dir}")
    return metrics


def cmd_demo(args: argparse.Namespace) -> None:
    import csv

    from gnnrec.run import load_run, recommend_for_text

    metrics = cmd_train(args)
    config, prepared, model = load_run(_config(args).run_dir)
    rec_file = Path(config.run_dir) / "recommendations.csv"
    by_user: dict[str, list[str]] = {}
    with open(rec_file) as f:
        for row in csv.DictReader(f):
            by_user.setdefault(row["user_id"], []).append(row["title"])
    for user in list(by_user)[: args.users]:
        print(f"\nTop-10 for user {user}:")
        print("\n".join(f"  {r + 1:2d}. {t}" for r, t in enumerate(by_user[user][:10])))
    print(f'\nTop-10 for a new user who wrote: "{args.text}"')
    for r, (_, title, _) in enumerate(recommend_for_text(prepared, model, config, args.text)):
        print(f"  {r + 1:2d}. {title}")
    print(
        f"\nwritten: {rec_file}, {Path(config.run_dir) / 'training_curve.png'}, "
        f"{Path(config.run_dir) / 'metrics.json'}"
    )
    beat = metrics["recall@20"] > metrics["baselines"]["popularity"]["recall@20"]
    print(
        "the GCN beats the popularity baseline"
        if beat
        else "WARNING: the GCN does not beat the popularity baseline"
    )


def cmd_encode(args: argparse.Namespace) -> None:
    from gnnrec.pipeline import encode_nodes, load_dataset, node_texts

    for flag, key in (
        ("backend", "backend"),
        ("model", "model"),
        ("num_workers", "num_workers"),
        ("shard_size", "shard_size"),
    ):
        value = getattr(args, flag)
        if value is not None:
            args.overrides.append(f"encoder.{key}={json.dumps(value)}")
    for item in args.engine_args:
        key, _, value = item.partition("=")
        args.overrides.append(f"encoder.engine_args.{key}={value}")
    config = _config(args)
    graph, split = load_dataset(config.data)
    if args.output:
        from gnnrec.encoders.sharded import encode_sharded

        texts = node_texts(graph, split, config.data)
        templates = {
            "item_template": config.data.item_template,
            "user_template": config.data.user_template,
        }
        features = encode_sharded(texts, args.output, config.encoder, meta=templates)
        print(
            f"{features.shape[0]} node features of dimension {features.shape[1]} "
            f"(users first, then items) in {Path(args.output) / 'features.npy'}"
        )
        return
    encoded = encode_nodes(graph, split, config)
    if graph.item_features is None:
        raise ValueError("model.text_features is false: there is nothing to encode")
    total = graph.num_users + graph.num_items
    print(
        f"{total} node features of dimension {graph.item_features.shape[1]}: {encoded} "
        "distinct texts encoded now, the rest read from the cache"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from gnnrec.run import evaluate_run

    _print_metrics(evaluate_run(args.run_dir, args.allow_data_change))


def cmd_recommend(args: argparse.Namespace) -> None:
    from gnnrec.outputs import check_recommendations_target, write_recommendations
    from gnnrec.run import load_run, recommend_for_text

    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    _check_output_folder(args.output)
    if args.output is not None and args.text is not None:
        raise ValueError(
            "--output writes the known users' table; a --text user's list is printed (give one)"
        )
    if args.output is not None:
        check_recommendations_target(args.output)  # before the minutes of loading
    if args.text is not None and not args.text.strip():
        raise ValueError("--text is empty: describe the new user in a few words")
    overrides = [f"eval.top_k={args.k}"]
    writes_run_dir = args.text is None and args.output is None
    # Writing into the run: its lock (and so a writable folder) first, before any loading.
    with run_dir_lock(args.run_dir, create=False) if writes_run_dir else nullcontext():
        config, prepared, model = load_run(
            args.run_dir, overrides, allow_data_change=args.allow_data_change
        )
        if args.text is not None:
            ranked = recommend_for_text(prepared, model, config, args.text, args.k)
            for item_id, title, score in ranked:
                print(f"{item_id}\t{score:.4f}\t{title}")
            return
        out = args.output or Path(args.run_dir) / "recommendations.csv"
        write_recommendations(prepared, model, config, out)
    print(f"wrote top-{args.k} recommendations for {prepared.data.num_users} users to {out}")


def _check_output_folder(output: Path | None) -> None:
    """An output path's folder must exist: a typo is an error, not a new folder tree."""
    parent = None if output is None else output.absolute().parent
    if parent is not None and not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise ValueError(f"{output}: {parent} {what}")


def cmd_config_show(args: argparse.Namespace) -> None:
    from gnnrec.run import check_can_train

    config = _config(args)
    check_can_train(config)  # what train accepts, not only what parses
    print(tomli_w.dumps(dataclasses.asdict(config)), end="")


def cmd_export(args: argparse.Namespace) -> None:
    from gnnrec.run import export_embeddings

    _check_output_folder(args.output)
    folder = export_embeddings(args.run_dir, args.output)
    print(f"wrote user and item embeddings with their ids to {folder}")


def cmd_submit(args: argparse.Namespace) -> int:
    from gnnrec.distributed.submit import submit

    command = args.job_command[1:] if args.job_command[:1] == ["--"] else args.job_command
    return submit(command, args.address, args.working_dir, wait=not args.no_wait)


def cmd_synth(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from gnnrec.data.synthetic import SyntheticSpec, write_synthetic

    out = args.output
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise ValueError(
            f"{out} is not empty: runs trained on a dataset there would no longer match it. "
            "Choose a new --output, or pass --overwrite to replace it"
        )
    spec = SyntheticSpec(
        num_users=args.users,
        num_items=args.items,
        communities=args.communities,
        interactions_per_user=args.interactions_per_user,
        affinity=args.affinity,
        seed=args.seed,
    )
    with tqdm(total=spec.num_users, unit="user", desc="generating") as bar:
        folder = write_synthetic(
            spec,
            args.output,
            write_csv=not args.no_csv,
            progress=lambda n: bar.update(n - bar.n),
            workers=args.workers,
            write_parquet=args.parquet,
        )
    print(
        f"wrote {folder} (train on it with --set data.dataset=synthetic --set data.path={folder})"
    )


def cmd_bench(args: argparse.Namespace) -> None:
    from gnnrec.bench import (
        attention,
        distributed,
        embeddings,
        encoders,
        end_to_end,
        epoch,
        ingest,
        kernels,
        quality,
        sampling,
        steps,
    )

    topics = {
        "attention": attention,
        "distributed": distributed,
        "epoch": epoch,
        "embeddings": embeddings,
        "encoders": encoders,
        "end_to_end": end_to_end,
        "ingest": ingest,
        "kernels": kernels,
        "quality": quality,
        "sampling": sampling,
        "steps": steps,
    }
    topics[args.topic].main(args.bench_args)


def _output_flags(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "--quiet",
        action="store_true",
        default=default,
        help="only warnings and errors (no per-epoch lines)",
    )
    parser.add_argument(
        "--debug", action="store_true", default=default, help="on an error, show the traceback"
    )


def _command(sub, common: argparse.ArgumentParser, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand that also takes the flags every command takes (``common``)."""
    return sub.add_parser(name, parents=[common], **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gnnrec",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gnnrec {__version__}")
    _output_flags(parser, default=False)
    # --quiet and --debug work before or after the command (SUPPRESS: a command that does not
    # repeat them keeps the value given before it).
    every_command = argparse.ArgumentParser(add_help=False)
    _output_flags(every_command, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = _command(
        sub, every_command, "demo", help="train on the bundled MovieLens data and show results"
    )
    _config_args(demo)
    _allow_data_change(demo)
    demo.add_argument("--users", type=int, default=3, help="known users to show")
    demo.add_argument("--text", default=DEMO_USER_TEXT, help="a new user's description")
    demo.set_defaults(func=cmd_demo)
    train = _command(sub, every_command, "train", help="train (or resume) a run and evaluate it")
    _config_args(train)
    _allow_data_change(train)
    train.add_argument(
        "--num-workers",
        type=int,
        help="train on Ray Train with N DDP workers (parallel.num_workers; 0: in this process)",
    )
    train.add_argument(
        "--address",
        help="a running Ray cluster (parallel.address; default: the job's, else a private "
        "local instance on 127.0.0.1)",
    )
    train.set_defaults(func=cmd_train)
    encode = _command(
        sub,
        every_command,
        "encode",
        help="encode user and item text into node features",
        description="Encodes every user and item text once (cached by model and text hash). "
        "With --output, writes resumable shards on Ray Data and the memory-mapped "
        "features.npy (node order: users, then items) with its manifest.json there.",
    )
    _config_args(encode)
    encode.add_argument("--backend", choices=["hf", "vllm"], help="encoder.backend")
    encode.add_argument("--model", help="a local embedding model folder (encoder.model)")
    encode.add_argument("--num-workers", type=int, help="Ray workers (encoder.num_workers)")
    encode.add_argument("--shard-size", type=int, help="texts per shard (encoder.shard_size)")
    encode.add_argument(
        "--engine-arg",
        dest="engine_args",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a vllm.LLM argument, e.g. dtype=float32",
    )
    encode.add_argument("--output", type=Path, help="folder for shards and features.npy")
    encode.set_defaults(func=cmd_encode)
    evaluate = _command(
        sub, every_command, "evaluate", help="re-evaluate a trained run on its test split"
    )
    evaluate.add_argument("--run-dir", required=True)
    _allow_data_change(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)
    recommend = _command(
        sub, every_command, "recommend", help="top-K items per user, or for a text"
    )
    recommend.add_argument("--run-dir", required=True)
    _allow_data_change(recommend)
    recommend.add_argument("-k", type=int, default=10)
    recommend.add_argument("--output", type=Path, help=".csv or .parquet")
    recommend.add_argument("--text", help="rank items for a new user described by this text")
    recommend.set_defaults(func=cmd_recommend)
    export = _command(
        sub,
        every_command,
        "export",
        help="write a run's user and item embeddings for serving",
        description="Writes user_embeddings.npy, item_embeddings.npy (float32; score = dot "
        "product), user_ids.parquet, item_ids.parquet (column id) and export.json into --output.",
    )
    export.add_argument("--run-dir", required=True)
    export.add_argument("--output", type=Path, help="folder (default: RUN_DIR/export)")
    export.set_defaults(func=cmd_export)
    config = _command(sub, every_command, "config", help="show the effective configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = _command(
        config_sub,
        every_command,
        "show",
        help="print the configuration a run would use, as TOML",
        description="Prints the recipe, updated by --config and --set, as the TOML a run "
        "directory's config.toml would hold (and exits 2 naming any invalid setting).",
    )
    _config_args(show)
    show.set_defaults(func=cmd_config_show)
    submit = _command(
        sub,
        every_command,
        "submit",
        help="run a gnnrec command as a Ray job on a running cluster",
        description="Submits `gnnrec COMMAND ...` to a Ray cluster's job server (like `ray job "
        "submit --working-dir DIR -- gnnrec ...`) and prints its logs until it ends.",
    )
    submit.add_argument(
        "--address",
        default="",
        help="job server URL (default: RAY_ADDRESS when it is a URL, else http://127.0.0.1:8265)",
    )
    submit.add_argument("--working-dir", type=Path, help="folder uploaded as the job's cwd")
    submit.add_argument("--no-wait", action="store_true", help="return after submitting")
    submit.add_argument("job_command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    submit.set_defaults(func=cmd_submit)
    synth = _command(
        sub,
        every_command,
        "synth",
        help="generate a synthetic user-item graph with planted communities and text",
        description="Streams a deterministic power-law user-item dataset with community text "
        "to a folder (see gnnrec/data/synthetic.py).",
    )
    synth.add_argument("--output", type=Path, required=True)
    synth.add_argument("--users", type=int, default=10_000)
    synth.add_argument("--items", type=int, default=2_000)
    synth.add_argument("--communities", type=int, default=8)
    synth.add_argument("--interactions-per-user", type=float, default=20.0)
    synth.add_argument("--affinity", type=float, default=0.8)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--no-csv",
        action="store_true",
        help="no interactions.csv copy (training and out-of-core builds read the .npy parts)",
    )
    synth.add_argument(
        "--parquet",
        action="store_true",
        help="also the interactions as Parquet parts in table/ (for the table dataset)",
    )
    synth.add_argument("--workers", type=int, default=1, help="generating processes")
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous gnnrec synth output (never any other non-empty folder)",
    )
    synth.set_defaults(func=cmd_synth)
    bench = _command(
        sub,
        every_command,
        "bench",
        help="benchmarks: kernels, attention, sampling, epoch, encoders, quality, distributed, "
        "ingest, embeddings, steps, end_to_end",
        description="Runs bench/<topic>.py; arguments after the topic go to it (try -- --help).",
    )
    bench.add_argument(
        "topic",
        choices=[
            "attention",
            "distributed",
            "embeddings",
            "encoders",
            "end_to_end",
            "epoch",
            "ingest",
            "kernels",
            "quality",
            "sampling",
            "steps",
        ],
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_to_console(logging.WARNING if args.quiet else logging.INFO)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print(f"gnnrec {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the CLI boundary: one line, the traceback behind --debug
        if args.debug:
            raise
        expected = isinstance(err, ValueError | OSError | ImportError | ConnectionError)
        message = explain(err) if expected else f"{type(err).__name__}: {err}"
        print(f"gnnrec {args.command}: error: {message}", file=sys.stderr)
        if not expected:
            print("(an unexpected error: rerun with --debug for the traceback)", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
