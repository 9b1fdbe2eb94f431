"""The benchmark scripts run at a tiny size, so they cannot rot."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from gnnrec.bench import sampling


def test_sampling_bench_writes_rows_with_provenance(tmp_path, capsys):
    out = tmp_path / "sampling.jsonl"
    rows = sampling.main(
        [
            "--users",
            "300",
            "--items",
            "100",
            "--edges",
            "3000",
            "--batch-size",
            "32",
            "--batches",
            "2",
            "--repeats",
            "1",
            "--output",
            str(out),
        ]
    )
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == rows and rows[0]["sampler"] == "gnnrec NeighborSampler"
    for row in rows:
        assert row["sampled_edges_per_s"] > 0 and row["device"] and row["torch"]
        assert row["config"]["nodes"] == 400
    assert "| gnnrec NeighborSampler |" in capsys.readouterr().out


@pytest.mark.slow
def test_kernel_bench_checks_and_times_every_implementation(tmp_path, capsys):

    from gnnrec.kernels import BACKENDS

    if "triton" not in BACKENDS:
        pytest.skip("triton is not installed")
    from gnnrec.bench import kernels

    out = tmp_path / "kernels.jsonl"
    rows = kernels.main(["--graphs", "tiny-skewed", "--output", str(out)])
    checks = [r for r in rows if r["bench"] == "kernels-check"]
    assert len(checks) == 18 and all(r["ok"] for r in checks)
    impls = {r["impl"] for r in rows if r["bench"] == "aggregate"}
    assert {
        "triton (ours)",
        "torch.sparse.mm (cuSPARSE on GPU)",
        "PyG gather + index_add_",
    } <= impls
    layer = [r for r in rows if r["bench"] == "gcn-layer"]
    assert len(layer) == 3 and all(r["ms"] > 0 for r in layer)
    assert all(r["speedup_vs_cusparse"] > 0 for r in rows if r["bench"] == "aggregate")
    sweep = [(r["block_e"], r["pack_edges"]) for r in rows if r["bench"] == "tile-sweep"]
    assert sweep == [(16, 128), (16, 256), (32, 128), (32, 256)]
    launch = [
        (r["block_e"], r["num_warps"], r["reduce_once"])
        for r in rows
        if r["bench"] == "launch-sweep"
    ]
    assert launch == [(e, w, o) for e in (16, 32) for w in (1, 4) for o in (False, True)]
    assert all(r["ms"] > 0 for r in rows if r["bench"] == "launch-sweep")
    orders = [(r["order"], r["impl"]) for r in rows if r["bench"] == "order-sweep"]
    assert sorted({o for o, _ in orders}) == ["degree", "rcm"] and len(orders) == 4
    assert all(r["ms"] > 0 for r in rows if r["bench"] == "order-sweep")
    assert out.with_suffix(".png").stat().st_size > 0
    assert "device check: 18/18" in capsys.readouterr().out


def test_bench_command_dispatches_to_the_topic(tmp_path):
    from gnnrec.cli import main

    out = tmp_path / "s.jsonl"
    args = ["--users", "50", "--items", "20", "--edges", "300", "--batch-size", "8"]
    assert main(["bench", "sampling", *args, "--batches", "1", "--output", str(out)]) == 0
    assert out.read_text().count("\n") >= 1


def test_encoder_bench_reports_throughput(tmp_path):
    from gnnrec.bench import encoders

    out = tmp_path / "encoders.jsonl"
    rows = encoders.main(["--count", "24", "--backends", "hf", "--output", str(out)])
    assert rows[0]["texts"] == 24 and rows[0]["tokens"] > 24
    assert rows[0]["texts_per_s"] > 0 and rows[0]["load_s"] > 0


def test_quality_bench_compares_every_model_on_every_split(planted_dir, feature_cache, tmp_path):
    from helpers import planted_overrides

    from gnnrec.bench import quality

    # Every model gets these; the layer count stays each recipe's own (MF has none).
    overrides = [
        o for o in planted_overrides(planted_dir, feature_cache) if not o.startswith("model.layers")
    ] + ["train.epochs=3"]
    args = ["--seeds", "0", "1", "--output", str(tmp_path / "q.jsonl")]
    rows = quality.main([*args, *[f"--set={o}" for o in overrides]])
    ranked = {(r["split"], r["model"]) for r in rows if "recall@20" in r}
    models = {"text GCN", "text GCN, no cold dropout", "text GAT", "text NCF", "LightGCN"}
    models |= {"MF (BPR)", "popularity"}
    text_models = {"text GCN", "text GCN, no cold dropout", "text GAT", "text NCF", "popularity"}
    assert ranked == {(s, m) for s in ("warm", "cold", "new users, fold-in") for m in models} | {
        ("new users, text only", m) for m in text_models
    }
    rating = {r["model"]: r for r in rows if "rmse" in r}
    assert set(rating) == {"text GCN rating head", "biases μ+b_u+b_i", "global mean"}
    assert all(r["seeds"] == 2 and r["recall@20_std"] >= 0 for r in rows if "recall@20" in r)
    assert (tmp_path / "q.md").read_text().count("±") >= 12
    assert (tmp_path / "q.png").stat().st_size > 0


@pytest.mark.parametrize("recipe_model", ["text GCN", "LightGCN"])
def test_new_user_rows_score_what_the_handle_recommends(
    planted_dir, feature_cache, tmp_path, recipe_model
):
    """Each placement's Recall@20 is the mean, over the held-out users with test items, of
    what the handle's own top 20 for them (their given items left out) recalls."""
    import numpy as np
    from helpers import planted_overrides

    from gnnrec.bench.held_out_users import held_out_users
    from gnnrec.bench.quality import MODELS, new_user_rows
    from gnnrec.config import load_config
    from gnnrec.data.user_text import user_text_for_items
    from gnnrec.recipes import RECIPES
    from gnnrec.run import train_run
    from gnnrec.serve.handle import load

    recipe, extra = MODELS[recipe_model]
    overrides = [*planted_overrides(planted_dir, feature_cache), *extra, "train.epochs=3"]
    overrides += [f'run_dir="{tmp_path / "run"}"', "data.split=new_users"]
    train_run(load_config(None, overrides, base=RECIPES[recipe]()))
    rows = {(r["model"], r["split"]): r for r in new_user_rows(tmp_path / "run", "m", 0, True)}

    handle = load(tmp_path / "run")
    held = held_out_users(handle.graph, handle.split)
    ids = handle.item_ids
    test = [set() for _ in held.users]
    for u, i in zip(*held.test):
        test[u].add(ids[i])
    given = [set(items) for items in held.item_ids]
    evaluated = [u for u in range(len(held.users)) if test[u]]
    assert len(evaluated) >= 3

    def recall(tops: list[list[str]]) -> float:
        return float(np.mean([len(test[u] & set(tops[u][:20])) / len(test[u]) for u in evaluated]))

    folded = [
        [item for item, _ in handle.recommend_for_items(held.item_ids[u], k=20)]
        for u in range(len(held.users))
    ]
    assert all(not (set(top) & given[u]) for u, top in enumerate(folded))
    assert rows[("m", "new users, fold-in")]["recall@20"] == pytest.approx(recall(folded))
    if handle.config.model.text_features:
        texts = [user_text_for_items(handle.graph, r, handle.config.data) for r in held.item_rows]
        by_text = [
            [
                i
                for i, _ in handle.recommend_for_text(texts[u], k=20 + len(given[u]))
                if i not in given[u]
            ]
            for u in range(len(held.users))
        ]
        assert rows[("m", "new users, text only")]["recall@20"] == pytest.approx(recall(by_text))
    else:
        assert ("m", "new users, text only") not in rows
    popular = np.argsort(
        -np.bincount(handle.graph.interactions.item[handle.split.train], minlength=len(ids)),
        kind="stable",
    )
    by_count = [
        [ids[i] for i in popular if ids[i] not in given[u]][:20] for u in range(len(held.users))
    ]
    assert rows[("popularity", "new users, fold-in")]["recall@20"] == pytest.approx(
        recall(by_count)
    )
    handle.close()


def test_relations_bench_compares_weighted_and_unweighted_graphs(
    planted_dir, feature_cache, tmp_path
):
    from helpers import planted_overrides

    from gnnrec.bench import relations

    overrides = [
        o for o in planted_overrides(planted_dir, feature_cache) if not o.startswith("model.layers")
    ] + ["train.epochs=2"]
    args = ["--experiments", "weights", "--seeds", "0", "1", "--weights", "rating", "log1p(rating)"]
    args += ["--output", str(tmp_path / "r.jsonl")]
    rows = relations.main([*args, *[f"--set={o}" for o in overrides]])
    shown = {(r["model"], r["variant"]) for r in rows}
    weights = ("none", "rating", "log1p(rating)")
    assert shown == {(m, w) for m in ("LightGCN", "text GCN") for w in weights}
    for r in rows:
        assert r["seeds"] == 2 and [run["seed"] for run in r["runs"]] == [0, 1]
        has_verdict = r["variant"] != "none"
        assert ("recall@20_verdict" in r) == has_verdict
        if has_verdict:
            assert r["recall@20_verdict"] in ("win", "tie", "loss")
    assert (tmp_path / "r.md").read_text().count("±") == 2 * len(rows)
    assert (tmp_path / "r.png").stat().st_size > 0


def test_relations_bench_compares_graphs_with_planted_links(tmp_path):
    from gnnrec.bench import relations

    args = ["--experiments", "social", "cold", "--seeds", "0", "--social-users", "200"]
    args += ["--output", str(tmp_path / "s.jsonl"), "--set", "train.epochs=2"]
    rows = relations.main(args)
    for experiment, links in (("social", "friendships"), ("cold", "item_links")):
        mine = [r for r in rows if r["experiment"] == experiment]
        assert [r["variant"] for r in mine] == list(relations.planted_variants(tmp_path, links))
        assert all(0 <= r["recall@20"] <= 1 for r in mine)
        assert [("recall@20_verdict" in r) for r in mine] == [False, True, True]
    cold = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[-1])
    assert cold["experiment"] == "cold" and len(cold["runs"]) == 1


def test_relations_bench_times_the_typed_model_against_the_merged_one(tmp_path):
    from gnnrec.bench import relations

    out = tmp_path / "c.jsonl"
    rows = relations.main(
        ["--experiments", "cost", "--cost-users", "300", "--cost-steps", "1", "--output", str(out)]
    )
    assert [r["variant"] for r in rows] == ["merged", "typed", "typed, segmented"]
    merged, typed, segmented = rows
    assert segmented["layer_parameters"] == typed["layer_parameters"]
    assert merged["directed_edges"] == typed["directed_edges"] > 2 * merged["interactions"]
    assert merged["friendships"] > 0 and merged["item_links"] > 0
    assert typed["layer_parameters"] == 4 * merged["layer_parameters"]  # a weight per relation
    assert all(r["step_s"] > 0 and r["forward_s"] > 0 for r in rows)
    assert "| typed |" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize(
    "weighted, plain, expected",
    [
        ([0.30, 0.31, 0.32], [0.20, 0.21, 0.22], "win"),
        ([0.20, 0.21, 0.22], [0.30, 0.31, 0.32], "loss"),
        ([0.30, 0.19, 0.32], [0.20, 0.21, 0.22], "tie"),  # one seed worse
        ([0.201, 0.30, 0.10], [0.200, 0.29, 0.09], "tie"),  # better each time, within spread
    ],
)
def test_relations_verdict(weighted, plain, expected):
    from gnnrec.bench.relations import verdict

    assert verdict(weighted, plain) == expected


@pytest.mark.slow
def test_distributed_bench_times_one_process_and_ray_workers(tmp_path):

    from gnnrec.bench import distributed

    out = tmp_path / "distributed.jsonl"
    rows = distributed.main(
        ["--workers", "0", "2", "--set", "train.epochs=1", "--output", str(out)]
    )
    assert [r["workers"] for r in rows] == [0, 2]
    assert all(r["examples_per_s"] > 0 and r["steps_per_s"] > 0 for r in rows)
    assert rows[0]["allreduce_mb_per_step"] == 0 < rows[1]["allreduce_mb_per_step"]
    # Both cut every batch into the same two slices, so they learn the same model.
    assert rows[1]["recall@20"] == pytest.approx(rows[0]["recall@20"], abs=1e-6)
    assert out.with_suffix(".png").stat().st_size > 0


def test_epoch_bench_trains_with_every_available_loader(tmp_path):
    from gnnrec.bench import epoch

    out = tmp_path / "epoch.jsonl"
    args = ["--nodes", "3000", "--edges", "30000", "--batches", "2", "--features", "8"]
    rows = epoch.main([*args, "--hidden", "16", "--workdir", str(tmp_path), "--output", str(out)])
    loaders = {r["loader"] for r in rows}
    assert "gnnrec sampler, CPU" in loaders
    for row in rows:
        assert row["sampled_edges_per_s"] > 0 and row["epoch_seconds"] > 0
        assert row["model_seconds_per_batch"] > 0 and row["sample_seconds_per_batch"] > 0
        assert row["config"]["train_seeds"] == 240 and row["config"]["edges"] > 10_000
        assert all(loss > 0 for loss in row["loss_first_last"])
    if "PyG NeighborLoader" in loaders:  # torch-sparse or pyg-lib installed
        assert all(r["sampling_speedup_vs_pyg"] > 0 for r in rows)
    assert out.with_suffix(".png").stat().st_size > 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    stages = [r["stage"] for r in written if r["bench"] == "epoch-progress"]
    assert stages == ["graph built", "pinned and features drawn"]  # before any loader's row
    assert written[0]["bench"] == "epoch-progress"
    # The graph drawn in memory (the papers100M-scale path) is the same graph on the CPU; a
    # time budget cuts the epoch short and says so.
    capped = epoch.main(
        [*args, "--build", "memory", "--full-epoch", "--max-seconds", "0", "--only", "CPU"]
        + ["--batch-size", "64", "--hidden", "16", "--output", str(tmp_path / "capped.jsonl")]
    )
    assert [r["loader"] for r in capped] == ["gnnrec sampler, CPU"]
    assert capped[0]["config"]["edges"] == rows[0]["config"]["edges"]
    assert capped[0]["timed_batches"] == 1 and not capped[0]["epoch_measured"]
    with pytest.raises(SystemExit, match="no loader"):
        epoch.main([*args, "--only", "nothing-by-this-name", "--output", str(out)])


def test_epoch_bench_skips_pyg_where_it_cannot_sample(tmp_path, monkeypatch):
    """The GPU image has PyG without pyg-lib or torch-sparse, where NeighborLoader cannot
    sample: the bench says so and goes on with the other loaders."""
    import torch_geometric.typing

    from gnnrec.bench import epoch

    monkeypatch.setattr(torch_geometric.typing, "WITH_PYG_LIB", False)
    monkeypatch.setattr(torch_geometric.typing, "WITH_TORCH_SPARSE", False)
    args = ["--nodes", "2000", "--edges", "20000", "--batches", "1", "--features", "8"]
    rows = epoch.main([*args, "--hidden", "8", "--output", str(tmp_path / "e.jsonl")])
    assert [r["loader"] for r in rows] == ["gnnrec sampler, CPU"]


def test_rows_name_the_commit_also_without_git(monkeypatch):
    """The device machine's copy of the tree has no .git: the commit comes from the command."""
    from gnnrec.bench.harness import provenance

    monkeypatch.setenv("GNNREC_GIT_SHA", "abc1234")
    assert provenance()["git_sha"] == "abc1234"
    monkeypatch.delenv("GNNREC_GIT_SHA")
    assert provenance()["git_sha"] not in ("", "abc1234")  # this checkout's own commit


@pytest.mark.slow
def test_a_failing_candidate_costs_its_row_not_the_run(tmp_path, monkeypatch):
    """An out-of-memory candidate (PyG's gather baseline at F = 256 fp32 on the card) gets a row
    with its error; every other candidate, graph and part is still measured and written."""
    from gnnrec.kernels import BACKENDS

    if "triton" not in BACKENDS:
        pytest.skip("triton is not installed")
    from gnnrec.bench import kernels

    real = kernels.aggregation_candidates

    def with_a_failure(*args):
        def out_of_memory():
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 118 GiB")

        return {**real(*args), "always fails": out_of_memory}

    monkeypatch.setattr(kernels, "aggregation_candidates", with_a_failure)
    out = tmp_path / "kernels.jsonl"
    kernels.main(["--graphs", "tiny-skewed", "--output", str(out)])
    written = [json.loads(line) for line in out.read_text().splitlines()]
    aggregate = [r for r in written if r["bench"] == "aggregate"]
    failed = [r for r in aggregate if r["impl"] == "always fails"]
    assert len(failed) == 2 and all(r["ms"] is None for r in failed)
    assert all(r["error"].startswith("OutOfMemoryError: CUDA out of memory") for r in failed)
    ours = [r for r in aggregate if r["impl"] == "triton (ours)"]
    assert len(ours) == 2 and all(r["ms"] > 0 and r["speedup_vs_cusparse"] > 0 for r in ours)
    assert any(r["bench"] == "tile-sweep" for r in written)


def test_ingest_bench_times_every_reader_on_the_same_table(tmp_path):
    from gnnrec.bench import ingest

    out = tmp_path / "ingest.jsonl"
    args = ["--rows", "3000", "--big-rows", "5000", "--big-parts", "3", "--workdir", str(tmp_path)]
    rows = ingest.main([*args, "--output", str(out)])
    by_reader = {(r["reader"], r["rows"]): r for r in rows}
    assert set(by_reader) == {
        ("rows", 3000),
        ("columnar", 3000),
        ("arrow", 3000),
        ("columnar", 5000),
    }
    small = [r for r in rows if r["rows"] == 3000]
    assert len({(r["users"], r["items"]) for r in small}) == 1  # the same graph by every reader
    assert all(r["peak_rss_mb"] > 0 and r["rows_per_s"] > 0 for r in rows)
    assert by_reader[("columnar", 3000)]["speed_vs_rows"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


def test_embeddings_bench_compares_dense_and_sharded_tables(tmp_path):
    from gnnrec.bench import embeddings

    out = tmp_path / "embeddings.jsonl"
    args = ["--nodes", "5000", "--lookup", "300", "--steps", "2", "--output", str(out)]
    rows = embeddings.main(args)
    dense, sharded = rows
    assert (dense["table"], sharded["table"]) == ("dense", "sharded")
    assert dense["bytes_sent_per_step"] == 5000 * 64 * 4  # DDP all-reduces the whole gradient
    assert sharded["bytes_sent_per_step"] < 300 * (8 + 2 * 64 * 4) + 8  # at most the rows asked
    assert sharded["table_fraction_per_worker"] == pytest.approx(0.5, abs=0.01)
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.slow  # a synthetic log through every stage, with 2 Ray workers
def test_end_to_end_bench_times_every_stage_with_its_memory(tmp_path):
    from gnnrec.bench import end_to_end

    out = tmp_path / "e2e.jsonl"
    args = ["--users", "400", "--items", "80", "--per-user", "6", "--steps", "4"]
    args += ["--batch-size", "64", "--test-users", "50", "--folder", str(tmp_path / "e2e")]
    rows = end_to_end.main([*args, "--output", str(out)])
    stages = [r["stage"] for r in rows]
    assert stages == [
        "synth",
        "prepare",
        "train",
        "embeddings",
        "evaluate",
        "recommend",
        "train command, all",
        "export",
    ]
    assert all(r["peak_gb"] > 0 for r in rows if r["seconds"] > 2)  # sampled once a second
    assert rows[0]["steps"] == 4 and rows[0]["test_user_sample"]["users"] == 50
    assert all(0.4 < share < 0.6 for share in rows[0]["worker_table_share"])
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.slow  # six training processes
def test_steps_bench_times_each_optimizer_and_an_earlier_tree_alike(tmp_path):
    from gnnrec.bench import steps

    out = tmp_path / "steps.jsonl"
    args = ["--users", "3000", "--items", "300", "--steps", "2", "--warmup", "1"]
    args += ["--data", str(tmp_path / "data"), "--run-dir", str(tmp_path / "runs" / "run")]
    rows = steps.main([*args, "--baseline", "HEAD", "--output", str(out)])
    assert [(r["code"], r["id_optimizer"], r["huge_pages"]) for r in rows] == [
        (code, optimizer, pages)
        for code, optimizer in (
            ("HEAD", "default"),
            ("this tree", "adam"),
            ("this tree", "rowwise_adagrad"),
        )
        for pages in (False, True)
    ]
    for row in rows:
        assert row["seconds_per_step"] > 0 and row["peak_rss_gb"] > 0
        assert row["training_pairs"] > 0
        assert row["speedup_vs_baseline"] == pytest.approx(
            rows[0]["seconds_per_step"] / row["seconds_per_step"]
        )
    assert len(out.read_text().splitlines()) == 6
    assert out.with_suffix(".png").stat().st_size > 0


def test_attention_bench_compares_our_gat_layer_with_gatconv(tmp_path):
    from gnnrec.bench import attention

    out = tmp_path / "attention.jsonl"
    small = ["--scale", "0.0005", "--batches", "1", "--fanouts", "4", "3", "--output", str(out)]
    for extra in ([], ["--batch-size", "0"]):
        rows = attention.main([*small, *extra])
        checks = [r for r in rows if r["bench"] == "attention-check"]
        assert len(checks) == 6 and all(c["ok"] for c in checks)  # 3 dtypes, split or not
        ours, pyg, floor = [r for r in rows if r["bench"] == "attention"]
        assert [r["implementation"] for r in (ours, pyg, floor)] == ["gnnrec", "pyg", "projection"]
        assert ours["edges_per_batch"] > 0 and ours["peak_mb"] >= 0
        assert pyg["seconds_per_batch"] > 0 and floor["seconds_per_batch"] > 0
        (comparison,) = [r for r in rows if r["bench"] == "attention-comparison"]
        assert comparison["same_losses"]
        assert comparison["speed_vs_pyg"] == pytest.approx(
            pyg["seconds_per_batch"] / ours["seconds_per_batch"]
        )
        if pyg["peak_mb"] > 0:  # a tiny batch may not move resident memory at all
            assert comparison["memory_vs_pyg"] == pytest.approx(ours["peak_mb"] / pyg["peak_mb"])
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["bench"] for r in written[:10]] == ["attention-check"] * 6 + ["attention"] * 3 + [
        "attention-comparison"
    ]  # in the order measured
    assert len(written) == 2 * 10
    assert out.with_suffix(".png").stat().st_size > 0


def test_the_attention_device_check_holds_the_triton_kernels_to_fp64():
    from gnnrec.bench.attention import check_on_device

    checks = check_on_device(torch.device("cpu"), backend="triton")  # the interpreter
    assert len(checks) == 6 and all(c["ok"] for c in checks)
    assert {c["backend"] for c in checks} == {"triton"}
    assert max(c["max_rel_err_dsrc"] for c in checks if c["dtype"] == "float32") < 1e-4


def test_attention_bench_records_an_implementation_that_runs_out_of_memory(tmp_path, monkeypatch):
    from gnnrec.bench import attention

    real_run = subprocess.run

    def pyg_killed(command, **kwargs):
        if "pyg" in command:  # as the kernel's OOM killer would end it
            return subprocess.CompletedProcess(command, -9, "", "")
        return real_run(command, **kwargs)

    monkeypatch.setattr(attention.subprocess, "run", pyg_killed)
    out = tmp_path / "attention.jsonl"
    args = ["--scale", "0.0005", "--batches", "1", "--batch-size", "0", "--output", str(out)]
    rows = attention.main(args)
    ours, pyg, _ = [r for r in rows if r["bench"] == "attention"]
    assert pyg["error"] == "out of memory" and pyg["peak_mb"] is None
    assert ours["seconds_per_batch"] > 0
    assert not [r for r in rows if r["bench"] == "attention-comparison"]  # nothing to compare
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.slow  # two planted runs, a synthetic run served by Ray Serve, Ray Data workers
def test_serving_bench_measures_fold_in_latency_and_batch(planted_dir, feature_cache, tmp_path):
    from helpers import planted_overrides

    from gnnrec.bench import serving

    overrides = [o for o in planted_overrides(planted_dir, feature_cache) if "layers" not in o]
    out = tmp_path / "serving.jsonl"
    rows = serving.main(
        ["--models", "LightGCN", "--seeds", "0", "--items", "3000", "--users", "1000"]
        + ["--batch-users", "2000", "--batch-items", "300", "--steps", "2", "--seconds", "1"]
        + ["--concurrency", "1", "2", "--output", str(out)]
        + [f"--set={o}" for o in [*overrides, "train.epochs=2"]]
    )
    summary = [r for r in rows if r["part"] == "fold_in_summary"]
    assert len(summary) == 1 and summary[0]["new_users"] >= 1
    assert (
        0 <= summary[0]["recall@20_folded_in"] <= 1 and "relative_gap_to_recomputed" in summary[0]
    )
    latency = [r for r in rows if r["part"] == "latency"]
    assert {r["load"] for r in latency} == {
        "known user top-20",
        "fold-in top-20 (10 items)",
        "empty endpoint (engine ceiling)",
    }
    assert all(
        r["errors"] == 0 and r["requests"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in latency
    )
    assert 0 <= latency[0]["ann_recall@20"] <= 1  # (untrained items tie at 0 at this size)
    batch = {r["path"]: r for r in rows if r["part"] == "batch"}
    assert set(batch) == {"one process", "Ray Data"} and batch["Ray Data"]["users"] == 2000
    assert out.with_suffix(".png").stat().st_size > 0
    assert len(out.read_text().splitlines()) == len(rows)


@pytest.mark.slow  # three short ml-latest-small runs (base, update, retrain)
def test_updates_bench_compares_an_update_with_a_retrain(tmp_path):
    from gnnrec.bench import updates

    out = tmp_path / "updates.jsonl"
    rows = updates.main(
        ["--models", "LightGCN", "--seeds", "0", "--update-epochs", "1", "--output", str(out)]
        + ["--set=train.epochs=1"]
    )
    run, summary = rows
    assert run["added"] == run["delta_interactions"] and run["new_users"] > 0
    assert (run["strategy"], run["update_epochs"]) == ("rows", 1)  # auto, for LightGCN
    assert run["test_users"] > 0
    for label in ("update", "retrain", "fold_in"):
        assert 0 <= run[f"ndcg@20_{label}"] <= 1 and 0 <= run[f"recall@20_{label}"] <= 1
    assert summary["time_ratio"] == summary["update_s"] / summary["retrain_s"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


def test_explain_bench_removes_evidence_random_and_gnnexplainer_edges(tmp_path):
    from gnnrec.bench import explain

    out = tmp_path / "explain.jsonl"
    (row,) = explain.main(
        ["--datasets", "planted", "--pairs", "30", "--gnnexplainer-pairs", "2"]
        + ["--gnnexplainer-epochs", "5", "--output", str(out), "--set=train.epochs=2"]
    )
    assert row["pairs"] == 30 and row["gnnexplainer_pairs"] == 2
    assert row["pyg_model_gap"] < 1e-5  # GNNExplainer explains the run's own model
    for method in ("evidence", "random", "gnnexplainer"):
        assert row[f"mean_rank_drop_{method}"] is not None
    # the evidence's three items carry the largest terms: their removal lowers the score most
    assert row["score_win_rate_vs_random"] >= 0.5
    assert 0 <= row["win_rate_vs_random"] + row["tie_rate_vs_random"] <= 1
    assert row["evidence_ms_per_pair"] > 0 and row["evidence_pairs_per_s_batch"] > 0
    assert out.with_suffix(".png").stat().st_size > 0
