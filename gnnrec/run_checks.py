"""What a run checks before it trains or loads anything: that the data is what it trained on
(``data.json``), that a resumed checkpoint was trained under the same settings and batch
slices, that this machine has the devices and data it names, and that the run directory may
hold a run."""

from __future__ import annotations

from pathlib import Path

from gnnrec.common.atomic_files import read_json
from gnnrec.common.devices import resolve_device
from gnnrec.common.run_lock import is_run_dir
from gnnrec.config import RunConfig, changed_on_resume, load_config
from gnnrec.pipeline import Prepared, data_fingerprint
from gnnrec.train.checkpoint import load_checkpoint

DATA_FILE = "data.json"


def check_data(prepared: Prepared, run_dir: Path, allow_change: bool, config: RunConfig) -> dict:
    """The fingerprint of ``prepared``; ``ValueError`` when ``run_dir`` recorded another one
    (the data, or the text of a text model, changed since the run trained) unless
    ``allow_change``."""
    now = data_fingerprint(prepared)
    saved_file = run_dir / DATA_FILE
    if saved_file.exists() and not allow_change:
        saved = read_json(saved_file)
        text = saved.get("text_sha256")
        if config.model.text_features and text is not None and text != now["text_sha256"]:
            raise ValueError(
                f"the user or item text changed since {run_dir} was trained ({saved_file}: "
                f"the text fingerprints differ), and {config.model.label} reads it: use the "
                "text it trained on, or pass --allow-data-change (allow_data_change=True in "
                "Python) to go ahead anyway"
            )
        if saved.get("sha256") != now["sha256"]:
            counts = ", ".join(
                f"{k} {saved.get(k)} -> {now[k]}" for k in ("users", "items", "interactions")
            )
            raise ValueError(
                f"the data changed since {run_dir} was trained ({saved_file}: {counts}; the "
                "fingerprints differ): use the data it trained on, or pass "
                "--allow-data-change (allow_data_change=True in Python) to go ahead anyway"
            )
    return now


def check_resumable(config: RunConfig, run_dir: Path) -> None:
    """Refuses to resume a checkpoint that was trained under a different configuration."""
    saved_file = run_dir / "config.toml"
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists():
        load_checkpoint(last, mmap=True)  # a corrupt checkpoint is named now, not after loading
    if not (saved_file.exists() and (last.exists() or (run_dir / "ray").exists())):
        return
    saved = load_config(saved_file)
    on_ray = bool(saved.parallel.num_workers)
    if on_ray != bool(config.parallel.num_workers):
        raise ValueError(
            f"{run_dir} was trained {'on Ray' if on_ray else 'in one process'}; resume it the "
            "same way (parallel.num_workers = 0 trains in one process) or choose a new --run-dir"
        )
    slices = saved.parallel.num_partitions
    if slices != config.parallel.num_partitions:
        counts = ", ".join(str(w) for w in range(1, slices + 1) if slices % w == 0)
        raise ValueError(
            f"{run_dir} was trained with every batch cut into {slices} slices "
            f"(parallel.partitions), and its results depend on them: resume with --set "
            f"parallel.partitions={slices} on a number of workers that divides {slices} "
            f"({counts})"
        )
    # the same slices, however they were asked for (0: one per worker)
    changed = [c for c in changed_on_resume(saved, config) if c != "parallel.partitions"]
    if changed:
        raise ValueError(
            f"{run_dir} holds a checkpoint trained with different {', '.join(changed)}; "
            "resume with the same configuration or choose a new --run-dir"
        )


def check_trainable_folder(run_dir: Path) -> None:
    """``ValueError`` unless ``run_dir`` may hold a run's files: a new or empty folder, or a
    run directory (it has a lock or ``config.toml``); never the current folder, one above it,
    a folder inside another run, or a non-empty folder of other files (a run writes
    ``model.pt``, ``metrics.json``, ...)."""
    here = Path.cwd().resolve()
    resolved = run_dir.resolve()
    if resolved == here or resolved in here.parents:
        raise ValueError(
            f"--run-dir {run_dir}: the current folder or one above it; give a folder for the run"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--run-dir {run_dir}: exists and is not a folder")
    holder = next((p for p in resolved.parents if is_run_dir(p)), None)
    if holder is not None:
        raise ValueError(
            f"--run-dir {run_dir}: inside the run directory {holder}, whose folders are that "
            "run's own (its versions, export, checkpoints); give a folder outside it"
        )
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not (is_run_dir(run_dir) or (run_dir / "config.toml").exists()):
            raise ValueError(
                f"--run-dir {run_dir}: a non-empty folder that is no gnnrec run, whose files a "
                "run could replace; give a new or empty folder"
            )


def check_can_train(config: RunConfig) -> None:
    """What ``train`` checks before any work, beyond the configuration's own validation; ``gnnrec
    config show`` runs it too, so a configuration it shows is one ``train`` accepts: the devices
    exist on this machine, a local data path exists, the run directory may hold a run."""
    config.train.torch_device()
    if config.model.text_features and config.encoder.backend == "hf":
        resolve_device(config.encoder.device, "encoder.device")
    path = config.data.path
    if path and "://" not in path and not Path(path).expanduser().exists():
        raise ValueError(f"data.path {path}: no such file or folder")
    check_trainable_folder(Path(config.run_dir))
