"""Benchmarks: one script per topic over the shared harness (:mod:`gnnrec.bench.harness`).

Each writes JSON rows with provenance (device, versions, git SHA, date, config) and prints a
short table; baselines are timed in the same process.
"""

# Every topic, each a module of this package with a ``main(argv)``: the CLI lists these.
TOPICS = (
    "attention",
    "convergence",
    "distributed",
    "embeddings",
    "encoders",
    "end_to_end",
    "epoch",
    "explain",
    "ingest",
    "kernels",
    "phrasing",
    "profiles",
    "quality",
    "relations",
    "sampling",
    "serving",
    "steps",
    "tuning",
    "updates",
)
