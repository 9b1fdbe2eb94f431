"""Hyperparameter search on Ray Tune: ``gnnrec tune --config base.toml --space space.toml``.

The space is a TOML file of config keys, each with one distribution::

    [train.lr]
    loguniform = [1e-4, 1e-2]
    [model.hidden]
    choice = [32, 64, 128]
    [train.l2]
    uniform = [0.0, 1e-3]
    [model.layers]
    grid = [1, 2, 3]        # every value, num_samples times each

The grid's points (every combination of the grid keys) run in a random order drawn from
``train.seed``, not in the order the values are written: asynchronous successive halving
compares each trial with the ones that reached its rung before it, so a grid written from the
worst value up would otherwise promote every early (bad) trial.

Every trial is a normal gnnrec run (one process, or Ray Train workers with
``parallel.num_workers``) of the base config with the trial's values, in
``TUNE_DIR/trials/<trial id>``; a callback reports every validation to Tune (the metric
``eval.select`` names, default Recall@20, as ``valid_<metric>`` with the run's ``epoch``), so
ASHA (rungs at ``grace_period`` epochs times powers of ``reduction_factor`` up to
``train.epochs``) stops the bad trials early. The experiment lives in ``TUNE_DIR/ray``:
run the same command again after a kill and it resumes (finished trials kept, unfinished ones
resumed from their own gnnrec checkpoints). At the end ``TUNE_DIR/best.toml`` holds the best
trial's whole config (its ``run_dir`` set to ``TUNE_DIR/best``), which ``gnnrec train --config``
runs as is (the best of the trials that ran to the end), and ``TUNE_DIR/trials.jsonl`` one
row per trial. Ray is the private loopback
instance unless ``--address`` names a cluster.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gnnrec.common.atomic_files import write_text_atomic
from gnnrec.common.log import get_logger
from gnnrec.common.typed_fields import check_fields
from gnnrec.config import RunConfig, config_from_dict, save_config
from gnnrec.train.callbacks import Callback
from gnnrec.train.evaluate import LOWER_IS_BETTER, selected_metric

log = get_logger(__name__)

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform")
EXPERIMENT = "ray"  # TUNE_DIR/ray: Ray Tune's experiment folder
GRID = "grid_point"  # the param-space key of the shuffled grid points (a dict of grid values)
SCORE = "score"  # what ASHA compares: the metric, negated where lower is better


@dataclass(frozen=True)
class Dimension:
    """One key of the space: ``key`` (``train.lr``), its ``kind`` (:data:`DISTRIBUTIONS`) and
    ``values`` (the choices, or the ``[low, high]`` bounds)."""

    key: str
    kind: str
    values: tuple

    def to_tune(self):
        from ray import tune

        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        if self.kind == "choice":
            return tune.choice(list(self.values))
        low, high = self.values
        return tune.uniform(low, high) if self.kind == "uniform" else tune.loguniform(low, high)

    def example(self) -> Any:
        """A value of the dimension (to check the key and type against the config)."""
        return self.values[0]


def read_space(path: str | Path) -> list[Dimension]:
    """The dimensions of a space file (see the module docstring), each checked: a known
    distribution, values of the right shape; keys are checked against the config by
    :func:`trial_config`."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{path}: not a readable TOML space ({err})") from None
    dimensions = [_dimension(key, spec, path) for key, spec in _leaves(table)]
    if not dimensions:
        raise ValueError(
            f"{path}: the space has no keys (e.g. [train.lr] loguniform = [1e-4, 1e-2])"
        )
    return dimensions


def _leaves(table: dict, prefix: str = ""):
    """``(dotted key, {distribution: values})`` of every key of a nested space table."""
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and not (set(value) & set(DISTRIBUTIONS)):
            yield from _leaves(value, f"{key}.")
        else:
            yield key, value


def _dimension(key: str, spec: Any, path: Path) -> Dimension:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ValueError(
            f"{path}: {key} needs one distribution of {', '.join(DISTRIBUTIONS)}, e.g. "
            f"[{key}] choice = [...]; got {spec!r}"
        )
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise ValueError(f"{path}: {key}.{kind} must be a non-empty list, got {values!r}")
    if kind in ("uniform", "loguniform"):
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if len(values) != 2 or not numbers or not values[0] < values[1]:
            raise ValueError(f"{path}: {key}.{kind} must be [low, high] numbers, low < high")
        if kind == "loguniform" and values[0] <= 0:
            raise ValueError(f"{path}: {key}.loguniform needs low > 0, got {values[0]}")
    return Dimension(key, kind, tuple(values))


def param_space(dimensions: list[Dimension], seed: int) -> dict[str, Any]:
    """Tune's param space: each non-grid key's distribution, and the grid keys' points (every
    combination) as one grid of dicts under :data:`GRID`, shuffled by ``seed``."""
    import itertools
    import random

    from ray import tune

    grid = [d for d in dimensions if d.kind == "grid"]
    space = {d.key: d.to_tune() for d in dimensions if d.kind != "grid"}
    if grid:
        points = [
            dict(zip((d.key for d in grid), values))
            for values in itertools.product(*(d.values for d in grid))
        ]
        random.Random(seed).shuffle(points)
        space[GRID] = tune.grid_search(points)
    return space


def trial_values(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's values by dotted key (its grid point unpacked)."""
    return {**{k: v for k, v in config.items() if k != GRID}, **config.get(GRID, {})}


def trial_config(base: dict, values: dict[str, Any], run_dir: Path) -> RunConfig:
    """The base config (a dict) with a trial's ``values`` (dotted keys), in ``run_dir``,
    checked like any config (an unknown key or a value of the wrong type names the key)."""
    merged = copy.deepcopy(base)
    for key, value in {**values, "run_dir": str(run_dir)}.items():
        section = merged
        *parents, last = key.split(".")
        for part in parents:
            section = section.setdefault(part, {})
        section[last] = value
    return config_from_dict(merged)


class TuneReport(Callback):
    """Reports each validated epoch to Ray Tune: ``epoch``, the metric and :data:`SCORE`."""

    def __init__(self, metric: str):
        self.metric, self.reported = metric, False

    def on_epoch_end(self, row: dict[str, Any]) -> bool | None:
        from ray import tune

        key = f"valid_{self.metric}"
        if key in row:
            sign = -1.0 if self.metric in LOWER_IS_BETTER else 1.0
            tune.report({"epoch": row["epoch"], self.metric: row[key], SCORE: sign * row[key]})
            self.reported = True
        return None

    def report_history(self, run_dir: Path) -> None:
        """Reports the run's last validated epoch again when this invocation reported none (a
        trial resumed after every epoch had run: Tune needs a result with the metric)."""
        history = run_dir / "metrics.jsonl"
        rows = [json.loads(line) for line in history.open()] if history.is_file() else []
        validated = [r for r in rows if f"valid_{self.metric}" in r]
        if not self.reported and validated:
            self.on_epoch_end(validated[-1])


def run_trial(values: dict[str, Any], base: dict, tune_dir: str, metric: str) -> None:
    """One trial (inside a Ray Tune worker): a gnnrec run of the base config with ``values``
    in ``tune_dir/trials/<trial id>`` (resumed when it has a checkpoint)."""
    from ray import tune

    from gnnrec.run import train_run

    trial = tune.get_context().get_trial_id()
    config = trial_config(base, trial_values(values), Path(tune_dir) / "trials" / trial)
    report = TuneReport(metric)
    train_run(config, callbacks=[report])
    report.report_history(Path(config.run_dir))


@dataclass(kw_only=True)
class TuneSettings:
    """How ``gnnrec tune`` searches (the CLI fills it)."""

    num_samples: int = 8
    # asha: stop bad trials early; fifo: every trial runs all its epochs (a full grid)
    scheduler: Literal["asha", "fifo"] = "asha"
    max_concurrent: int = 2
    grace_period: int = 1
    reduction_factor: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: str = ""

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("num_samples", "max_concurrent", "grace_period"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.reduction_factor < 2:
            raise ValueError(f"reduction_factor must be >= 2, got {self.reduction_factor}")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ValueError("cpus_per_trial must be > 0 and gpus_per_trial >= 0")


def tune_run(
    base: RunConfig, dimensions: list[Dimension], tune_dir: str | Path, settings: TuneSettings
) -> dict:
    """Searches ``dimensions`` around ``base`` (see the module docstring); returns the best
    trial's ``{"trial", "values", "metric", "value", "epoch", "best_config"}``."""
    tune_dir = Path(tune_dir).resolve()
    base_dict = dataclasses.asdict(base)
    base_dict["train"]["progress"] = False
    # every key and type checked before anything starts
    trial_config(base_dict, {d.key: d.example() for d in dimensions}, tune_dir / "check")
    metric = selected_metric(base.eval.select, base.train.objective)
    from gnnrec.common.ray_cluster import connect

    connect(settings.address)
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=base_dict, tune_dir=str(tune_dir), metric=metric),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
    )
    experiment = tune_dir / EXPERIMENT
    # Tune's classic progress table (trials, their status and metric) rather than its boxes
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if tune.Tuner.can_restore(str(experiment)):
        log.info("resuming the search in %s", experiment)
        tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_errored=True)
    else:
        scheduler = FIFOScheduler()
        if settings.scheduler == "asha":
            scheduler = ASHAScheduler(  # (max_t past the last epoch: a trial that gets
                time_attr="epoch",  # there is not stopped before its run writes its results)
                max_t=base.train.epochs + 1,
                grace_period=min(settings.grace_period, base.train.epochs),
                reduction_factor=settings.reduction_factor,
            )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(dimensions, base.train.seed),
            tune_config=tune.TuneConfig(
                metric=SCORE,
                mode="max",
                num_samples=settings.num_samples,
                scheduler=scheduler,
                max_concurrent_trials=settings.max_concurrent,
            ),
            run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(tune_dir), verbose=1),
        )
    results = tuner.fit()
    return _write_outcome(results, base_dict, tune_dir, metric)


def _write_outcome(results, base: dict, tune_dir: Path, metric: str) -> dict:
    """``trials.jsonl`` (every trial: values, best metric and epoch, epochs run, its seconds,
    its error if any, whether it ran to the end) and
    ``best.toml``; the best trial's summary."""
    rows = []
    for result in results:
        frame = result.metrics_dataframe
        reported = [] if frame is None or SCORE not in frame else frame.to_dict("records")
        best = max(reported, key=lambda r: r[SCORE]) if reported else None
        rows.append(
            {
                "trial": result.metrics.get("trial_id") if result.metrics else None,
                "values": trial_values(result.config or {}),
                "metric": metric,
                "value": None if best is None else best[metric],
                "score": None if best is None else best[SCORE],
                "epoch": None if best is None else int(best["epoch"]),
                "epochs_run": int(max((r["epoch"] for r in reported), default=0)),
                "seconds": float(reported[-1].get("time_total_s", 0.0)) if reported else 0.0,
                "error": None if result.error is None else str(result.error).splitlines()[0],
            }
        )
        rows[-1]["finished"] = (
            tune_dir / "trials" / str(rows[-1]["trial"]) / "metrics.json"
        ).is_file()
    text = "".join(json.dumps(r, default=str) + "\n" for r in rows)
    write_text_atomic(tune_dir / "trials.jsonl", text)
    scored = [r for r in rows if r["score"] is not None and math.isfinite(r["score"])]
    if not scored:
        errors = [r["error"] for r in rows if r["error"]]
        raise ValueError(f"no trial reported {metric}; errors: {errors[:3]}")
    finished = [r for r in scored if r["finished"]]  # (not stopped by ASHA)
    best = max(finished or scored, key=lambda r: r["score"])
    config = trial_config(base, best["values"], tune_dir / "best")
    config.train.progress = True
    save_config(config, tune_dir / "best.toml")
    log.info(
        "best trial %s: %s %.4f at epoch %d", best["trial"], metric, best["value"], best["epoch"]
    )
    return {**best, "best_config": str(tune_dir / "best.toml")}
