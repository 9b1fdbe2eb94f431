"""Run-level operations behind the CLI and the Python API: train, evaluate, recommend and
export in a run directory.

A run directory holds ``config.toml``, ``checkpoints/last.pt`` (resumable), ``model.pt`` (the
best validated weights), ``metrics.jsonl`` (per epoch), ``metrics.json`` (test),
``training_curve.png``, ``recommendations.csv``, ``stages.json`` (when each stage of the
last ``train`` began and how long it took) and ``gnnrec.log`` (every train's INFO lines).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from gnnrec.common.atomic_files import read_json, write_json_atomic
from gnnrec.common.log import get_logger, log_to_file
from gnnrec.common.run_lock import run_dir_lock
from gnnrec.config import (
    RunConfig,
    load_config,
    save_config,
    with_absolute_paths,
)
from gnnrec.models.recommender import Recommender
from gnnrec.outputs import embeddings, write_export, write_recommendations
from gnnrec.pipeline import Prepared, model_for, prepare
from gnnrec.plots import plot_training_curve
from gnnrec.provenance import PROVENANCE, check_provenance, run_provenance, unchecked_data
from gnnrec.run_checks import (
    DATA_FILE,
    check_can_train,
    check_data,
    check_resumable,
)
from gnnrec.train.callbacks import Callback, check_callbacks
from gnnrec.train.checkpoint import load_checkpoint, save_checkpoint
from gnnrec.train.determinism import deterministic_algorithms
from gnnrec.train.evaluate import evaluation_report
from gnnrec.train.trackers import trackers
from gnnrec.train.trainer import Trainer, write_history
from gnnrec.versions import current_dir, current_version

if TYPE_CHECKING:
    from gnnrec.serve.item_index import IndexConfig

STAGES_FILE = "stages.json"
LOG_FILE = "gnnrec.log"  # every INFO line of the run's train commands, appended
log = get_logger(__name__)


class StageClock:
    """Times the stages of a run: ``with clock("train"): ...``; ``rows`` holds ``{"stage",
    "start"`` (Unix seconds) ``, "seconds"}`` for each stage that ended."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.time()
        log.info("%s ...", stage)
        yield
        seconds = time.time() - start
        self.rows.append({"stage": stage, "start": start, "seconds": seconds})
        log.info("%s: done in %.1f s", stage, seconds)


def evaluate(
    prepared: Prepared, model: Recommender, config: RunConfig, z: torch.Tensor | None = None
) -> dict:
    """Test metrics of the model and the baselines, as written to ``metrics.json`` (``z``: its
    final embeddings, when already computed)."""
    z = embeddings(prepared, model, config) if z is None else z
    cold = prepared.split.cold_items(prepared.graph)
    report = evaluation_report(
        model,
        prepared.data,
        z,
        prepared.test,
        config.eval.ks,
        config.train.objective,
        cold,
        config.eval.test_users,
        config.eval.test_user_seed,
    )
    names = {
        "dataset": prepared.graph.name,
        "split": prepared.split.name,
        "model": config.model.name,
        "model_label": model.label,
    }
    return {**names, **report}


def train_run(
    config: RunConfig,
    on_step: Callable[[int], None] | None = None,
    allow_data_change: bool = False,
    callbacks: Sequence[Callback] = (),
) -> dict:
    """Trains (resuming when ``run_dir`` has a checkpoint, on the same data unless
    ``allow_data_change``), evaluates, writes every artifact; returns the test metrics
    (``metrics.json``). Holds the run directory's lock throughout. ``callbacks`` (and the
    trackers ``[track]`` switches on) see it start, every epoch and its end."""
    check_can_train(config)
    callbacks = [*check_callbacks(callbacks), *trackers(config.track)]
    run_dir = Path(config.run_dir)
    if current_version(run_dir) is not None:
        raise ValueError(
            f"{run_dir} has been updated (its current version is {current_version(run_dir)}, "
            "by `gnnrec update`): train a fresh run in another --run-dir, or update this one"
        )
    with run_dir_lock(run_dir) as created:
        try:
            with (
                contextlib.ExitStack() as scratch,  # what the run holds until it ends
                deterministic_algorithms(config.train.deterministic),
                log_to_file(run_dir / LOG_FILE),
            ):
                absolute = with_absolute_paths(config)
                return _train_run(absolute, on_step, allow_data_change, scratch, callbacks)
        except BaseException:
            # A run that failed before its first checkpoint leaves no folder it created behind
            # (removed while the lock is held: no other process can be writing into it).
            unsaved = not (run_dir / "checkpoints").exists() and not (run_dir / "ray").exists()
            if created and unsaved:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


def _train_run(
    config: RunConfig,
    on_step: Callable[[int], None] | None,
    allow_data_change: bool,
    scratch: contextlib.ExitStack,
    callbacks: list[Callback],
) -> dict:
    run_dir = Path(config.run_dir)
    check_resumable(config, run_dir)
    clock = StageClock()
    with clock("prepare"):
        prepared = prepare(config, progress=config.train.progress)
    provenance = checked_provenance(config, prepared, run_dir, allow_data_change)
    with clock("train"):
        model, history, best_epoch = fit(
            config, prepared, provenance, scratch, on_step, callbacks=callbacks
        )
    metrics = write_artifacts(config, prepared, model, history, best_epoch, provenance, clock)
    for callback in callbacks:
        callback.on_train_end(metrics, run_dir)
    return metrics


def fit(
    config: RunConfig,
    prepared: Prepared,
    provenance: dict,
    scratch: contextlib.ExitStack,
    on_step: Callable[[int], None] | None = None,
    initial: dict[str, torch.Tensor] | None = None,
    trainable: list[str] | None = None,
    trainable_rows: torch.Tensor | None = None,
    callbacks: Sequence[Callback] = (),
) -> tuple[Recommender, list[dict], int]:
    """Trains ``config``'s model on ``prepared`` in ``config.run_dir`` (one process, or Ray
    Train workers), from ``initial`` weights when given and nothing is to be resumed, only the
    parameters named in ``trainable`` and the ID-table rows ``trainable_rows`` (None: all; see
    :class:`~gnnrec.train.trainer.Trainer`), with ``callbacks`` (on rank 0); returns the
    model of the best weights, the history and the best epoch."""
    if config.parallel.num_workers:
        frozen = (initial, trainable, trainable_rows)
        return _fit_on_ray(config, prepared, provenance, scratch, *frozen, callbacks)
    for callback in callbacks:
        callback.on_train_begin(dataclasses.asdict(config), Path(config.run_dir))
    model = model_for(config, prepared.data).to_device(config.train.torch_device())
    trainer = Trainer(
        model,
        prepared.data,
        config.train,
        config.run_dir,
        on_step,
        shard=config.parallel.shard(0, 1),
        provenance=provenance,
        select=config.eval.select,
        initial=initial,
        trainable=trainable,
        trainable_rows=trainable_rows,
        callbacks=callbacks,
    )
    history = trainer.train()
    return model, history, trainer.best_epoch


def write_artifacts(
    config: RunConfig,
    prepared: Prepared,
    model: Recommender,
    history: list[dict],
    best_epoch: int,
    provenance: dict,
    clock: StageClock,
    extra: dict | None = None,
) -> dict:
    """Writes what a trained run holds (``model.pt``, the training curve, ``metrics.json`` with
    ``extra``, ``recommendations.csv``, ``stages.json``) into ``config.run_dir``; returns the
    test metrics."""
    run_dir = Path(config.run_dir)
    save_checkpoint({"model": model.state_dict(), PROVENANCE: provenance}, run_dir / "model.pt")
    plot_training_curve(history, run_dir / "training_curve.png", best_epoch)
    with clock("embeddings"):
        z = embeddings(prepared, model, config)  # once, for the metrics and recommendations
    with clock("evaluate"):
        metrics = evaluate(prepared, model, config, z)
    metrics |= {"best_epoch": best_epoch, "epochs_run": len(history)}
    metrics["trained_on"] = _trained_on(config)
    metrics |= extra or {}
    write_json_atomic(run_dir / "metrics.json", metrics)
    with clock("recommend"):
        write_recommendations(prepared, model, config, run_dir / "recommendations.csv", z)
    write_json_atomic(run_dir / STAGES_FILE, clock.rows)
    return metrics


def checked_provenance(
    config: RunConfig, prepared: Prepared, run_dir: Path, allow_data_change: bool
) -> dict:
    """The run's provenance, once its data and any checkpoint it resumes are checked against
    it; writes ``config.toml`` and ``data.json`` (what this run trains with)."""
    last = run_dir / "checkpoints" / "last.pt"
    resuming = last.exists() or (run_dir / "ray").exists()
    fingerprint = check_data(prepared, run_dir, allow_data_change or not resuming, config)
    provenance = run_provenance(config, fingerprint)
    if last.exists():
        expected = unchecked_data(provenance, allow_data_change)
        check_provenance(load_checkpoint(last, mmap=True), expected, last)
    save_config(config, run_dir / "config.toml")
    write_json_atomic(run_dir / DATA_FILE, fingerprint)
    return provenance


def _fit_on_ray(
    config: RunConfig,
    prepared: Prepared,
    provenance: dict,
    scratch: contextlib.ExitStack,
    initial: dict[str, torch.Tensor] | None,
    trainable: list[str] | None,
    trainable_rows: torch.Tensor | None,
    callbacks: Sequence[Callback] = (),
) -> tuple[Recommender, list[dict], int]:
    """Trains on Ray Train (``callbacks`` in rank 0's worker); returns the driver's model of
    the best weights, the history and the best epoch. While the workers train, the driver's
    data waits on disk (page cache) and the driver keeps the object store's copy of the
    training data, not its own."""
    from gnnrec.distributed.ray_train import fit_on_ray, put_training_data

    run_dir, layout = Path(config.run_dir), config.parallel
    spilled = scratch.enter_context(tempfile.TemporaryDirectory(prefix=".spilled-", dir=run_dir))
    prepared.spill(Path(spilled))
    stored, prepared.data = put_training_data(prepared.data, layout)
    fit = fit_on_ray(
        config.model,
        config.train,
        layout,
        run_dir,
        stored,
        provenance,
        config.eval.select,
        initial,
        trainable,
        trainable_rows,
        callbacks,
        dataclasses.asdict(config),
    )
    # built after training (the workers build their own; the driver's memory is the data's
    # meanwhile), then given the result's tensors rather than copies of them
    model = model_for(config, prepared.data)
    model.load_state_dict(fit.state, assign=True)
    write_history(fit.history, run_dir)
    return model, fit.history, fit.best_epoch


def _trained_on(config: RunConfig) -> str:
    """Where the run trained, in words (``metrics.json``'s ``trained_on``)."""
    layout = config.parallel
    if layout.num_workers:
        each = "1 GPU" if layout.gpus_per_worker else "CPUs"
        return f"{layout.num_workers} Ray workers, {each} each"
    return str(config.train.torch_device())


def load_run(
    run_dir: str | Path,
    overrides: list[str] | None = None,
    progress: bool = False,
    allow_data_change: bool = False,
) -> tuple[RunConfig, Prepared, Recommender]:
    """The config, data and best model of a finished run; the data must be what it trained on
    (its ``data.json``) unless ``allow_data_change``."""
    run_dir = current_dir(run_dir)  # (its current version, once updated)
    model_file = run_dir / "model.pt"
    if not model_file.exists():
        raise FileNotFoundError(f"{model_file} does not exist: train the run first")
    config = load_config(run_dir / "config.toml", overrides)
    log.info("loading %s: its data, features and model", run_dir)
    state = _model_state(model_file)  # checked before the data is loaded
    prepared = prepare(config, progress=progress)
    fingerprint = check_data(prepared, run_dir, allow_data_change, config)
    provenance = run_provenance(config, fingerprint)
    check_provenance(state, unchecked_data(provenance, allow_data_change), model_file)
    model = model_for(config, prepared.data)
    try:
        model.load_state_dict(state["model"], assign=True)  # (an undrawn table: filled)
    except RuntimeError as err:
        raise ValueError(
            f"{model_file} does not fit {config.model.label} on this data ("
            f"{str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err}): "
            "the data or the model configuration changed since it was trained"
        ) from None
    return config, prepared, model.to(config.train.torch_device()).eval()


def _model_state(model_file: Path, mmap: bool = False) -> dict:
    state = load_checkpoint(model_file, mmap=mmap)
    if "model" not in state:
        raise ValueError(f"{model_file}: holds no model weights (not a gnnrec model.pt)")
    return state


def check_model_file(run_dir: str | Path) -> None:
    """``ValueError`` unless the current version's ``model.pt`` is this run's own (its model
    and settings; the data is checked where the run loads): quick, nothing but the file's
    header and the config read."""
    folder = current_dir(run_dir)
    model_file = folder / "model.pt"
    config = load_config(folder / "config.toml")
    expected = unchecked_data(run_provenance(config, {"sha256": None}), allow_data_change=True)
    check_provenance(_model_state(model_file, mmap=True), expected, model_file)


def evaluate_run(
    run_dir: str | Path, allow_data_change: bool = False, overrides: list[str] | None = None
) -> dict:
    """Recomputes a finished run's test metrics from ``model.pt`` (its saved configuration
    with ``overrides``, e.g. ``eval.test_users=1000``) and rewrites ``metrics.json`` (keeping
    how and where it trained)."""
    with run_dir_lock(run_dir, create=False):
        return _evaluate_run(run_dir, allow_data_change, overrides)


def _evaluate_run(
    run_dir: str | Path, allow_data_change: bool, overrides: list[str] | None
) -> dict:
    config, prepared, model = load_run(run_dir, overrides, allow_data_change=allow_data_change)
    metrics = evaluate(prepared, model, config)
    previous = current_dir(run_dir) / "metrics.json"
    if previous.exists():
        old = read_json(previous)
        metrics.update({k: old[k] for k in ("best_epoch", "epochs_run", "trained_on") if k in old})
    write_json_atomic(previous, metrics)
    return metrics


def export_embeddings(
    run_dir: str | Path,
    output: str | Path | None = None,
    index: IndexConfig | None = None,
    num_workers: int = 0,
) -> Path:
    """Writes a finished run's final embeddings for serving into ``output`` (default
    ``<run_dir>/export``; see :func:`~gnnrec.outputs.write_export`; ``num_workers``: the users'
    side as Parquet parts written by that many Ray Data workers). A model whose score is not a
    dot product (NCF) is refused with ``ValueError``: its embeddings alone do not rank."""
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    from gnnrec.common.atomic_files import check_replaceable

    output = Path(output) if output is not None else Path(run_dir) / "export"
    check_replaceable(output, "export")  # before the minutes of loading
    config, prepared, model = load_run(run_dir)
    if not model.scores_are_dot_products:
        raise ValueError(
            f"{model.label} scores a user and an item with more than a dot product of their "
            f"embeddings, so exported embeddings would rank items wrongly; rank with "
            f"`gnnrec recommend --run-dir {run_dir}` instead"
        )
    return write_export(prepared, model, config, output, index, num_workers)
