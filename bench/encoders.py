"""Encoder throughput: texts/s and tokens/s of the transformers encoder and the vLLM engine on
the same model and the same texts, in one run (model loading timed apart).

    gnnrec bench encoders [--count 1000] [--backends hf vllm]
"""

from __future__ import annotations

import argparse
import time

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, write_results
from gnnrec.common.flags import whole


def run(args: argparse.Namespace) -> list[dict]:
    from gnnrec.data import load_ml_latest_small
    from gnnrec.encoders import EncoderConfig, make_encoder

    texts = load_ml_latest_small().items.texts()[: args.count]
    rows = []
    for backend in args.backends:
        config = EncoderConfig(backend=backend, batch_size=args.batch_size)
        began = time.perf_counter()
        encoder = make_encoder(config)
        load_s = time.perf_counter() - began
        encoder.encode(texts[: min(16, len(texts))], progress=False)  # warm-up
        tokens = sum(
            min(len(ids), config.max_length) for ids in encoder.tokenizer(texts)["input_ids"]
        )
        began = time.perf_counter()
        encoder.encode(texts, progress=False)
        seconds = time.perf_counter() - began
        encoder.close()
        rows.append(
            {
                "bench": "encoders",
                "backend": backend,
                "model": "all-MiniLM-L6-v2",
                "texts": len(texts),
                "tokens": tokens,
                "load_s": load_s,
                "seconds": seconds,
                "texts_per_s": len(texts) / seconds,
                "tokens_per_s": tokens / seconds,
                **provenance(),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench encoders", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=whole(), default=1000, help="ml-latest-small item texts")
    parser.add_argument("--backends", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"])
    parser.add_argument("--batch-size", type=whole(), default=64)
    add_output_argument(parser, "encoders")
    args = parser.parse_args(argv)
    rows = run(args)
    write_results(rows, args.output)
    print(f"{rows[0]['device']}, torch {rows[0]['torch']}, {rows[0]['texts']} texts")
    print(markdown_table(rows, ["backend", "load_s", "seconds", "texts_per_s", "tokens_per_s"]))
    return rows


if __name__ == "__main__":
    main()
