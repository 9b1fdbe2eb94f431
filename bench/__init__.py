"""Benchmarks: one script per topic over the shared harness (:mod:`gnnrec.bench.harness`).

Each writes JSON rows with provenance (device, versions, git SHA, date, config) and prints a
short table; baselines are timed in the same process.
"""
