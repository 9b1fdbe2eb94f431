"""``gnnrec update``: interactions, users and items that arrived after a run trained, learned by
training on from the current version's weights for a bounded number of epochs, and written as
a new version of the run (:mod:`gnnrec.versions`) that every loader, and a running service,
switches to.

The tables grow by rows: new users are appended after the old users and new items after the
old items (:mod:`gnnrec.data.updates`), each new ID row drawn as training draws them
(``N(0, std^2)``, seeded by the run's seed and the version), the old rows moved to their new
node positions; the graph is the whole grown training graph (propagation and negatives see every
interaction). The optimizer starts afresh. By the ``"rows"`` strategy an update epoch takes the
new interactions once, together with ``replay`` times as many earlier training interactions
drawn at random (the same draw every epoch), and only the ID rows of the users and items those
interactions name train (the rest of the model is held); by ``"continue"`` every weight trains
on every training interaction, as in ``gnnrec train``
(:class:`~gnnrec.update_config.UpdateConfig`). Sharded ID tables
(``train.id_optimizer = "rowwise_adagrad"``) and Ray Train workers (``parallel.num_workers``)
train as they do in ``gnnrec train``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gnnrec.common.atomic_files import read_json, write_json_atomic
from gnnrec.common.log import get_logger, log_to_file
from gnnrec.common.run_lock import is_run_dir, run_dir_lock
from gnnrec.config import RunConfig, load_config
from gnnrec.data.splits import Split
from gnnrec.data.textgraph import NodeTable, TextGraph
from gnnrec.data.updates import Update, read_interactions, read_node_text
from gnnrec.models.recommender import Recommender
from gnnrec.pipeline import Prepared, data_fingerprint, model_for, prepare
from gnnrec.provenance import check_provenance, run_provenance
from gnnrec.run import LOG_FILE, StageClock, checked_provenance, fit, write_artifacts
from gnnrec.run_checks import DATA_FILE
from gnnrec.train.checkpoint import load_checkpoint
from gnnrec.train.determinism import deterministic_algorithms
from gnnrec.train.training_data import TrainingData, split_pairs
from gnnrec.update_config import UpdateConfig
from gnnrec.versions import VERSIONS, current_dir, current_version, next_version, publish

UPDATE_DIR = "update"  # the version's copy of what it added (gnnrec.data.updates.Update)
UPDATING = "update"  # what the run lock says while an update holds it
log = get_logger(__name__)


def grown_tables(
    state: dict[str, torch.Tensor],
    model: Recommender,
    old: tuple[int, int],
    seed: int,
) -> dict[str, torch.Tensor]:
    """``state`` (a model's weights for ``old = (U0, I0)`` users and items) with every node
    table grown to ``model``'s ``U + I`` rows: old user rows at ``[0, U0)``, old item rows at
    ``[U, U + I0)``, the new rows drawn ``N(0, std^2)`` (the model's ``table_std``)."""
    users0, items0 = old
    users, items, entities = model.num_users, model.num_items, model.num_entities
    generator = torch.Generator().manual_seed(seed)
    grown = dict(state)
    for table, key in zip(model.embedding_tables(), id_rows(model)):
        rows = state[key]
        if rows.shape[0] != users0 + items0 + entities:
            raise ValueError(f"{key}: {rows.shape[0]} rows, expected {users0 + items0 + entities}")
        fresh = torch.randn(
            users + items + entities, rows.shape[1], generator=generator, dtype=rows.dtype
        )
        fresh *= model.table_std(table)
        fresh[:users0] = rows[:users0]
        fresh[users : users + items0] = rows[users0 : users0 + items0]
        fresh[users + items :] = rows[users0 + items0 :]  # the entities, after the items
        grown[key] = fresh
    return grown


def id_rows(model: Recommender) -> list[str]:
    """The names of ``model``'s ID-row parameters (its embedding and bias tables)."""
    names = {id(module): name for name, module in model.named_modules()}
    return [f"{names[id(table)]}.weight" for table in model.embedding_tables()]


def reached_rows(data: TrainingData) -> torch.Tensor:
    """Bool ``[N]`` (every node): the nodes of the pairs ``data`` trains on (users, and items
    as ``U + i``), whose ID rows an update trains (entity rows stay)."""
    rows = torch.zeros(data.graph.num_nodes, dtype=torch.bool)
    rows[torch.as_tensor(np.asarray(data.train[0]), dtype=torch.int64)] = True
    rows[torch.as_tensor(np.asarray(data.train[1]), dtype=torch.int64) + data.num_users] = True
    return rows


def update_pairs(
    prepared: Prepared, added: int, replay: float | None, seed: int, validate: bool
) -> TrainingData:
    """``prepared.data`` training on the ``added`` new interactions (the last of the training
    set) and ``replay`` times as many earlier training interactions drawn at random (``None``:
    every training interaction); the validation pairs only if ``validate``."""
    train = np.asarray(prepared.split.train)
    if replay is not None:
        new, earlier = train[len(train) - added :], train[: len(train) - added]
        count = min(len(earlier), round(replay * added))
        train = np.concatenate([new, np.random.default_rng(seed).choice(earlier, count, False)])
    pairs = split_pairs(prepared.graph, np.sort(train))
    data = prepared.data
    valid = data.valid if validate else tuple(a[:0] for a in data.valid)
    return TrainingData(data.graph, data.features, pairs, valid)


def update_run(
    run_dir: str | Path,
    data: str | Path,
    settings: UpdateConfig | None = None,
    *,
    users: str | Path | None = None,
    items: str | Path | None = None,
    on_step: Callable[[int], None] | None = None,
    progress: bool = False,
) -> dict:
    """Adds the update table ``data`` to the finished run ``run_dir`` as its next version (see
    the module docstring), with the text of new users and items from the tables ``users`` and
    ``items`` (``user_id`` / ``item_id`` and the run's text fields as columns); returns the
    version's test metrics, with ``update`` (what it added, the version it started from, its
    name and seconds). Nothing is written when a table is bad or adds nothing; a failed or
    killed update leaves no version behind (the next one replaces what it left)."""
    settings = settings or UpdateConfig()
    began = time.time()
    run_dir = Path(run_dir)
    with run_dir_lock(run_dir, create=False, purpose=UPDATING):
        base = current_dir(run_dir)
        if not (base / "model.pt").is_file():
            raise ValueError(f"{run_dir}: not finished (no model.pt): train it before updating")
        for table in (data, users, items):
            if table is not None and is_run_dir(table):
                raise ValueError(f"{table}: is a gnnrec run directory, not a table to add")
        # bad tables stop here, before anything is written
        change = Update(
            read_interactions(data),
            None if users is None else read_node_text(users, "user"),
            None if items is None else read_node_text(items, "item"),
        )
        name = next_version(run_dir)
        folder = run_dir / VERSIONS / name
        if folder.exists():  # an update killed before it became current: never read by anyone
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        try:
            change.write(folder / UPDATE_DIR)
            with log_to_file(folder / LOG_FILE):
                metrics = _update(base, folder, settings, on_step, progress, named=data)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        metrics["update"] |= {
            "version": name,
            "from_version": current_version(run_dir) or "trained",
            "seconds": time.time() - began,
        }
        write_json_atomic(folder / "metrics.json", metrics)
        publish(run_dir, name)
        log.info("%s: version %s is current (%s)", run_dir, name, metrics["update"]["line"])
        return metrics


def _update(
    base: Path,
    folder: Path,
    settings: UpdateConfig,
    on_step: Callable[[int], None] | None,
    progress: bool,
    named: str | Path,
) -> dict:
    """Prepares the grown data, trains from ``base``'s weights and writes the version
    (``named``: the interactions table as the caller gave it, for messages)."""
    old = load_config(base / "config.toml")
    config: RunConfig = dataclasses.replace(
        old,
        run_dir=str(folder),
        data=dataclasses.replace(old.data, updates=[*old.data.updates, str(folder / UPDATE_DIR)]),
        train=dataclasses.replace(
            old.train,
            epochs=settings.epoch_count(old.model.text_features),
            lr=settings.step_scale(old.model.text_features) * old.train.lr,
            progress=progress,
        ),
    )
    fingerprint = read_json(base / DATA_FILE)
    state = load_checkpoint(base / "model.pt")
    check_provenance(state, run_provenance(old, fingerprint), base / "model.pt")
    clock = StageClock()
    with (
        contextlib.ExitStack() as scratch,
        deterministic_algorithms(config.train.deterministic),
    ):
        with clock("prepare"):
            prepared = prepare(config, progress=progress)
        added = len(prepared.graph.interactions) - fingerprint["interactions"]
        if added <= 0:
            raise ValueError(
                f"{named}: adds no interaction the run does not already hold; nothing to update"
            )
        _check_base_data(prepared, added, fingerprint, base, config.model.text_features)
        _check_new_items_have_text(config, prepared, fingerprint["items"])
        counts = {
            "added": added,
            "new_users": prepared.graph.num_users - fingerprint["users"],
            "new_items": prepared.graph.num_items - fingerprint["items"],
            "strategy": settings.chosen(config.model.text_features),
        }
        counts["line"] = (
            f"{added} interactions, {counts['new_users']} new users, "
            f"{counts['new_items']} new items"
        )
        log.info("update: %s", counts["line"])
        provenance = checked_provenance(config, prepared, folder, allow_data_change=True)
        seed = config.train.seed * 1_000_003 + int(folder.name)
        model = model_for(config, prepared.data)
        initial = grown_tables(
            state["model"], model, (fingerprint["users"], fingerprint["items"]), seed
        )
        rows_only = counts["strategy"] == "rows"
        log.info(
            "update: %s, %d epoch(s) at step %g",
            counts["strategy"],
            config.train.epochs,
            config.train.lr,
        )
        subset = Prepared(
            prepared.graph,
            prepared.split,
            update_pairs(
                prepared, added, settings.replay if rows_only else None, seed, settings.validate
            ),
        )
        trainable = id_rows(model) if rows_only else None
        rows = reached_rows(subset.data) if rows_only else None
        if not (trainable is None or config.model.id_embeddings or config.train.objective == "mse"):
            # nothing the loss reads would train: the version is the grown graph, weights kept
            log.info("update: %s has no ID rows to train; its weights are kept", model.label)
            model = model_for(config, prepared.data)
            model.load_state_dict(initial, assign=True)
            history, best_epoch = [], 0
        else:
            with clock("train"):
                model, history, best_epoch = fit(
                    config, subset, provenance, scratch, on_step, initial, trainable, rows
                )
        return write_artifacts(
            config, prepared, model, history, best_epoch, provenance, clock, {"update": counts}
        )


def _check_base_data(
    prepared: Prepared, added: int, fingerprint: dict, base: Path, reads_text: bool
) -> None:
    """``ValueError`` unless the data before this update is what ``base`` trained on (its
    ``data.json``; the text too for a model that ``reads_text``): the update's rows come last,
    so that is a prefix of every table."""
    graph, split = prepared.graph, prepared.split
    users, items = fingerprint["users"], fingerprint["items"]

    def head(nodes: NodeTable, n: int) -> NodeTable:
        return NodeTable(nodes.ids[:n], {k: v[:n] for k, v in nodes.text_fields.items()})

    before = Prepared(
        TextGraph(
            graph.name,
            head(graph.users, users),
            head(graph.items, items),
            graph.interactions.subset(np.arange(fingerprint["interactions"])),
            entities=graph.entities,  # (an update adds no entities or relations)
            relation_edges=graph.relation_edges,
        ),
        Split(split.name, split.train[: len(split.train) - added], split.valid, split.test),
        prepared.data,
    )
    now = data_fingerprint(before)
    for key in ("sha256", "text_sha256") if reads_text else ("sha256",):
        if fingerprint.get(key) not in (None, now[key]):
            raise ValueError(
                f"the data {base} trained on changed since ({base / DATA_FILE}: the "
                f"{'text ' if key == 'text_sha256' else ''}fingerprints differ): an update "
                "adds to the data its run trained on; restore it, or train a new run"
            )


def _check_new_items_have_text(config: RunConfig, prepared: Prepared, old_items: int) -> None:
    """A text model places a new item by its text: refuse new items that have none."""
    if not config.model.text_features:
        return
    items = prepared.graph.items
    blank = [items.ids[i] for i in range(old_items, len(items)) if not items.text(i)]
    if blank:
        shown = ", ".join(repr(i) for i in blank[:5]) + (" ..." if len(blank) > 5 else "")
        raise ValueError(
            f"{len(blank)} new item(s) without text ({shown}), and {config.model.label} reads "
            f"item text: give their text with --items FILE (item_id and the columns "
            f"{sorted(items.text_fields)})"
        )
