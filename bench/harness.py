"""The benchmark harness: median timings, provenance, JSON rows and a markdown table."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` where there is one, else the platform's word."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_sha() -> str:
    """The commit measured: ``GNNREC_GIT_SHA`` when set (a copy of the tree without ``.git``,
    as on the device machine, gets it from the command line), else ``git rev-parse``."""
    if os.environ.get("GNNREC_GIT_SHA"):
        return os.environ["GNNREC_GIT_SHA"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        ).stdout.strip()
    except OSError:
        return ""


def provenance() -> dict[str, Any]:
    """Where and with what a number was measured."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name()
    return {
        "device": device,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "git_sha": git_sha(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` on the CPU (``time.perf_counter``)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_results(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Appends ``rows`` (each with provenance) to a JSON-lines file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def seeded_report(
    rows: list[dict[str, Any]],
    args: Any,
    table: Callable[[list[dict[str, Any]]], str],
    plot: Callable[[list[dict[str, Any]], Path], Path],
) -> list[dict[str, Any]]:
    """Rows of runs over ``args.seeds`` (each with its provenance already) appended to
    ``args.output``, with the ``table`` beside it (``.md``, under a line naming the machine,
    versions, seeds and ``args.overrides``) and the ``plot`` (``.png``); returns them."""
    out = write_results(rows, args.output)
    markdown = table(rows)
    first = rows[0]
    out.with_suffix(".md").write_text(
        f"{first['device']}, torch {first['torch']}, git {first['git_sha']}, {first['date']}; "
        f"seeds {args.seeds}; overrides {args.overrides}\n\n{markdown}\n"
    )
    png = plot(rows, out.with_suffix(".png"))
    print(markdown)
    print(f"written: {out}, {out.with_suffix('.md')}, {png}")
    return rows


def report(
    rows: list[dict[str, Any]],
    output: str | Path,
    plot: Callable[[list[dict[str, Any]], Path], Path],
    table: Callable[[list[dict[str, Any]]], str],
) -> list[dict[str, Any]]:
    """``rows`` with this machine's :func:`provenance`, appended to ``output``, drawn by ``plot``
    beside it (``.png``) and printed as ``table``; returns them."""
    meta = provenance()
    rows = [{**r, **meta} for r in rows]
    out = write_results(rows, output)
    png = plot(rows, out.with_suffix(".png"))
    print(table(rows))
    print(f"written: {out}, {png}")
    return rows


def pyplot():
    """``matplotlib.pyplot`` drawing to files (the Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Lays out ``fig``, writes it to ``path`` (120 dpi) and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


class PeakResident:
    """The peak rise of this process's resident memory over its level at entry, sampled every
    ``interval`` seconds on a thread (``/proc/self/statm``): what a block of work holds at its
    peak, where ``ru_maxrss`` would also count any earlier high-water mark. ``peak_mb`` after
    the block."""

    def __init__(self, interval: float = 0.0005):
        self.interval, self.peak_mb = interval, 0.0
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()

    def _resident(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._top = max(self._top, self._resident())

    def __enter__(self) -> PeakResident:
        self._base = self._top = self._resident()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._top = max(self._top, self._resident())
        self.peak_mb = (self._top - self._base) / 2**20


class PeakDeviceMemory:
    """:class:`PeakResident` for a CUDA device: the peak of allocated device memory during a
    block of work over the level at entry (``torch.cuda.max_memory_allocated``, the caching
    allocator's view), ``peak_mb`` after the block, which synchronises first."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mb = device, 0.0

    def __enter__(self) -> PeakDeviceMemory:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._base = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc) -> None:
        torch.cuda.synchronize(self.device)
        self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
