"""What each ``gnnrec`` subcommand does, one function a command (``cmd_<name>(args)``, ``args``
parsed by :mod:`gnnrec.cli`): read the configuration, call the run-level code, print."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from contextlib import nullcontext
from pathlib import Path

import tomli_w

from gnnrec.common.run_lock import run_dir_lock
from gnnrec.config import documented_toml, load_config
from gnnrec.recipes import RECIPES

DEMO_USER_TEXT = (
    "I love animated family films and Pixar movies, with adventure, humour and "
    "talking toys or animals."
)


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


# the summary table's columns: metric key, heading (the rest are in metrics.json)
SUMMARY = (
    ("recall@20", "Recall@20"),
    ("ndcg@20", "NDCG@20"),
    ("mrr@20", "MRR@20"),
    ("coverage@20", "Cover@20"),
    ("gini@20", "Gini@20"),
)


def _summary_row(label: str, metrics: dict) -> str:
    """``label`` and the :data:`SUMMARY` metrics ``metrics`` has (blank for the others)."""
    cells = "".join(
        f"{metrics[key]:>10.4f}" if key in metrics else f"{'':>10}" for key, _ in SUMMARY
    )
    return f"{label:<28}{cells}"


def _print_metrics(metrics: dict) -> None:
    print(f"\n{'model':<28}" + "".join(f"{heading:>10}" for _, heading in SUMMARY))
    print(_summary_row(metrics["model_label"], metrics))
    print(_summary_row("popularity baseline", metrics["baselines"]["popularity"]))
    if "cold" in metrics:
        cold = metrics["cold"]
        label = f"{metrics['model_label'].split(' on ')[0]}, cold items only"  # "GAT, cold ..."
        print(
            _summary_row(label, cold)
            + f"   ({cold['n_cold_items']} items with no training interactions)"
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

    from gnnrec.serve.handle import load

    metrics = cmd_train(args)
    run_dir = Path(_config(args).run_dir)
    rec_file = run_dir / "recommendations.csv"
    by_user: dict[str, list[str]] = {}
    with open(rec_file) as f:
        for row in csv.DictReader(f):
            by_user.setdefault(row["user_id"], []).append(row["title"])
    for user in list(by_user)[: args.users]:
        print(f"\nTop-10 for user {user}:")
        print("\n".join(f"  {r + 1:2d}. {t}" for r, t in enumerate(by_user[user][:10])))
    print(f'\nTop-10 for a new user who wrote: "{args.text}"')
    handle = load(run_dir)
    try:
        for r, (item, _) in enumerate(handle.recommend_for_text(args.text)):
            print(f"  {r + 1:2d}. {handle.title(item)}")
    finally:
        handle.close()
    print(f"\nwritten: {rec_file}, {run_dir / 'training_curve.png'}, {run_dir / 'metrics.json'}")
    beat = metrics["recall@20"] > metrics["baselines"]["popularity"]["recall@20"]
    print(
        "the GCN beats the popularity baseline"
        if beat
        else "WARNING: the GCN does not beat the popularity baseline"
    )


def cmd_encode(args: argparse.Namespace) -> None:
    from gnnrec.data.updates import load_updated
    from gnnrec.pipeline import encode_nodes, node_texts

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
    graph, split = load_updated(config.data)
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

    _print_metrics(evaluate_run(args.run_dir, args.allow_data_change, args.overrides))


def cmd_recommend(args: argparse.Namespace) -> None:
    from gnnrec.outputs import check_recommendations_target, write_recommendations
    from gnnrec.run import load_run
    from gnnrec.versions import current_dir

    _check_output_folder(args.output)
    new_user = args.text is not None or args.items is not None
    if args.output is not None and new_user:
        raise ValueError(
            "--output writes the known users' table; a new user's list (--text, --items) is "
            "printed (give one)"
        )
    if args.num_workers is not None and not new_user:
        _recommend_on_ray(args)
        return
    if args.output is not None:
        check_recommendations_target(args.output)  # before the minutes of loading
    if args.text is not None and not args.text.strip():
        raise ValueError("--text is empty: describe the new user in a few words")
    if args.users is not None and new_user:
        raise ValueError("--users picks known users; a --text or --items user is new (give one)")
    if args.num_workers is not None and new_user:
        raise ValueError("--num-workers ranks every known user; a --text or --items user is new")
    if new_user:
        _recommend_for_new_user(args)
        return
    overrides = _recommend_overrides(args)
    # Writing into the run: its lock (and so a writable folder) first, before any loading.
    with run_dir_lock(args.run_dir, create=False) if args.output is None else nullcontext():
        config, prepared, model = load_run(
            args.run_dir, overrides, allow_data_change=args.allow_data_change
        )
        # (the run's current version's file: the lock keeps an update from changing it)
        out = args.output or current_dir(args.run_dir) / "recommendations.csv"
        count = write_recommendations(prepared, model, config, out, users=args.users)
    print(f"wrote top-{args.k} recommendations for {count} users to {out}")


def _recommend_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` with ``-k`` as ``eval.top_k`` (given both ways, it is refused)."""
    if any(item.split("=", 1)[0].strip() == "eval.top_k" for item in args.overrides):
        raise ValueError("recommend takes the items per user from -k, not --set eval.top_k")
    return [*args.overrides, f"eval.top_k={args.k}"]


def _recommend_on_ray(args: argparse.Namespace) -> None:
    """Every user's top ``-k`` as Parquet parts in the folder ``--output``, ranked by Ray Data
    workers."""
    from gnnrec.common.atomic_files import check_replaceable
    from gnnrec.run import load_run
    from gnnrec.serve.batch_recommend import OUTPUT_KIND, recommend_on_ray

    if args.output is None or args.users is not None:
        raise ValueError(
            "--num-workers ranks every user into a folder of Parquet parts: give --output "
            "FOLDER (and no --users)"
        )
    if args.output.suffix.lower() in (".csv", ".tsv", ".parquet"):
        raise ValueError(
            f"--output {args.output}: --num-workers writes a folder of Parquet parts, not one "
            f"{args.output.suffix} file; give a folder name"
        )
    check_replaceable(args.output, OUTPUT_KIND)  # before the minutes of loading
    config, prepared, model = load_run(
        args.run_dir, _recommend_overrides(args), allow_data_change=args.allow_data_change
    )
    count = recommend_on_ray(prepared, model, config, args.output, args.num_workers)
    print(f"wrote top-{args.k} recommendations for {count} users to {args.output} (Parquet parts)")


def _recommend_for_new_user(args: argparse.Namespace) -> None:
    """Prints ``item_id, score, title`` lines for a new user of ``--items`` (folded in) and/or
    ``--text``."""
    from gnnrec.serve.handle import load

    handle = load(args.run_dir, allow_data_change=args.allow_data_change)
    try:
        if args.items is not None:
            ranked = handle.recommend_for_items(args.items, args.k, text=args.text)
        else:
            ranked = handle.recommend_for_text(args.text, args.k)
        for item, score in ranked:
            print(f"{item}\t{score:.4f}\t{handle.title(item)}")
    finally:
        handle.close()


def cmd_similar(args: argparse.Namespace) -> None:
    """Prints ``query, rank, id, similarity`` lines: the items nearest each ``--items`` id, or
    the users nearest each ``--users`` id."""
    from gnnrec.serve.handle import load

    handle = load(args.run_dir, allow_data_change=args.allow_data_change)
    try:
        if args.items is not None:
            nearest = handle.similar_items(args.items, args.k)
        else:
            nearest = handle.similar_users(args.users, args.k)
        print("query\trank\tid\tsimilarity" + ("\ttitle" if args.items else ""))
        for query, ranked in nearest.items():
            for rank, (other, score) in enumerate(ranked, start=1):
                title = f"\t{handle.title(other)}" if args.items else ""
                print(f"{query}\t{rank}\t{other}\t{score:.4f}{title}")
    finally:
        handle.close()


def cmd_explain(args: argparse.Namespace) -> None:
    """Prints each pair's explanation (text, or JSON lines with ``--json``), or writes them to
    ``--output`` as JSON lines."""
    from gnnrec.explain.pairs_file import check_output, read_pairs
    from gnnrec.explain.report import explanation_text
    from gnnrec.serve.handle import load

    if args.output is not None:
        if args.pairs is None:
            raise ValueError("--output writes the explanations of --pairs; give --pairs FILE.csv")
        check_output(args.output)
    if args.pairs is not None and args.items is not None:
        raise ValueError("--items goes with --user; a --pairs file names its own items")
    generator = None
    if args.phrasing == "llm":
        from gnnrec.explain.generator import Generator, GeneratorConfig

        generator = Generator(
            GeneratorConfig(
                backend=args.generator_backend,
                model=args.generator_model or "",
                cache_dir=args.generator_cache or "",
            )
        )
    pairs = read_pairs(args.pairs) if args.pairs is not None else None
    handle = load(args.run_dir, allow_data_change=args.allow_data_change)
    try:
        if pairs is None:
            items = args.items
            if items is None:
                items = [item for item, _ in handle.recommend([args.user], args.top)[args.user]]
            pairs = [(args.user, item) for item in items]
        explanations = handle.explain_pairs(pairs, args.k, args.paths)
        if generator is not None:
            from gnnrec.explain.phrasing import phrase

            report = phrase(explanations, generator, handle.item_titles)
            print(report.summary(), file=sys.stderr)
    finally:
        handle.close()
    lines = [json.dumps(e.to_dict()) for e in explanations]
    if args.output is not None:
        from gnnrec.common.atomic_files import write_text_atomic

        write_text_atomic(args.output, "".join(line + "\n" for line in lines))
        print(f"wrote {len(lines)} explanations to {args.output}")
    elif args.json:
        print("\n".join(lines))
    else:
        print("\n\n".join(explanation_text(e) for e in explanations))


def cmd_profile(args: argparse.Namespace) -> None:
    """Writes the users' generated profiles to ``--output`` and says how many passed."""
    from gnnrec.explain.generator import GeneratorConfig
    from gnnrec.explain.pairs_file import check_output
    from gnnrec.explain.profiles import write_profiles

    check_output(args.output, "profiles")
    generator = GeneratorConfig(
        backend=args.generator_backend,
        model=args.generator_model or "",
        cache_dir=args.generator_cache or "",
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )
    report = write_profiles(
        _config(args), generator, args.output, args.num_workers, args.shard_size
    )
    print(report.summary())
    print(
        f"wrote {args.output}: train on it with --set data.user_text=profile "
        f"--set data.profiles_path={args.output}"
    )


def cmd_serve(args: argparse.Namespace) -> None:
    from gnnrec.serve.launch import serve_run

    serve_run(
        args.run_dir,
        args.host,
        args.port,
        args.replicas,
        args.address,
        args.token_file,
        args.index,
    )


def _check_output_folder(output: Path | None) -> None:
    """An output path's folder must exist: a typo is an error, not a new folder tree."""
    parent = None if output is None else output.absolute().parent
    if parent is not None and not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise ValueError(f"{output}: {parent} {what}")


def cmd_config_show(args: argparse.Namespace) -> None:
    from gnnrec.run_checks import check_can_train

    config = _config(args)
    check_can_train(config)  # what train accepts, not only what parses
    if args.doc:
        print(documented_toml(config), end="")
        return
    print(tomli_w.dumps(dataclasses.asdict(config)), end="")


def cmd_export(args: argparse.Namespace) -> None:
    from gnnrec.run import export_embeddings
    from gnnrec.serve.item_index import IndexConfig

    _check_output_folder(args.output)
    index = None if args.index is None else IndexConfig(kind=args.index)
    folder = export_embeddings(args.run_dir, args.output, index, args.num_workers)
    built = f" and the item index ({args.index})" if index else ""
    print(f"wrote user and item embeddings, their ids and seen items{built} to {folder}")


def cmd_tune(args: argparse.Namespace) -> None:
    from gnnrec.tune import TuneSettings, read_space, tune_run

    settings = TuneSettings(
        num_samples=args.num_samples,
        scheduler=args.scheduler,
        max_concurrent=args.max_concurrent,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        address=args.address,
    )
    dimensions = read_space(args.space)
    config = _config(argparse.Namespace(**{**vars(args), "run_dir": None}))
    tune_dir = args.run_dir or "runs/tune"
    best = tune_run(config, dimensions, tune_dir, settings)
    values = ", ".join(f"{k} = {v}" for k, v in best["values"].items())
    print(f"best trial: {best['metric']} {best['value']:.4f} at epoch {best['epoch']} ({values})")
    print(f"its config: {best['best_config']} (gnnrec train --config {best['best_config']})")
    print(f"every trial: {Path(tune_dir) / 'trials.jsonl'}")


def cmd_update(args: argparse.Namespace) -> None:
    from gnnrec.update import UpdateConfig, update_run

    settings = UpdateConfig(
        strategy=args.strategy,
        epochs=args.epochs,
        replay=args.replay,
        lr_scale=args.lr_scale,
        validate=args.validate,
    )
    metrics = update_run(
        args.run_dir,
        args.data,
        settings,
        users=args.users,
        items=args.items,
        progress=sys.stderr.isatty(),
    )
    update = metrics["update"]
    print(
        f"version {update['version']} of {args.run_dir} is current (from "
        f"{update['from_version']}): {update['line']}; {update['strategy']}, "
        f"{metrics['epochs_run']} epoch(s), {update['seconds']:.1f} s"
    )
    _print_metrics(metrics)


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
        friends_per_user=args.friends_per_user,
        links_per_item=args.links_per_item,
        attributes_per_item=args.attributes_per_item,
        attributes=args.attributes,
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
    importlib.import_module(f"gnnrec.bench.{args.topic}").main(args.bench_args)
