"""Running a producer ahead of its consumer: batch ``i + 1`` is sampled and gathered on a
background thread while batch ``i`` trains (torch releases the GIL in its kernels).

On a GPU the producer issues its work on a stream of its own, so sampling and gathering overlap
the training kernels instead of queueing behind them on the training stream; each item carries
an event the consumer's stream waits on, and its tensors are recorded on the consumer's stream
so the caching allocator does not hand their memory back to the producer while they are in use.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from typing import Any, TypeVar

import torch

T = TypeVar("T")
_END = object()


def tensors_in(item: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside ``item`` (tensors, dataclasses, lists, tuples, dicts)."""
    if isinstance(item, torch.Tensor):
        yield item
    elif dataclasses.is_dataclass(item) and not isinstance(item, type):
        for f in dataclasses.fields(item):
            yield from tensors_in(getattr(item, f.name))
    elif isinstance(item, list | tuple):
        for value in item:
            yield from tensors_in(value)
    elif isinstance(item, dict):
        for value in item.values():
            yield from tensors_in(value)


def prefetch(
    items: Iterable[T], depth: int = 2, device: torch.device | str | None = None
) -> Iterator[T]:
    """Yields ``items`` in order, produced up to ``depth`` ahead on a daemon thread (on a side
    CUDA stream when ``device`` is a GPU); an exception in the producer is raised in the
    consumer, and a consumer that stops early stops the producer and waits for it."""
    if depth < 1:
        yield from items
        return
    device = None if device is None else torch.device(device)
    side = torch.cuda.Stream(device) if device is not None and device.type == "cuda" else None
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            with torch.cuda.stream(side) if side is not None else nullcontext():
                for item in items:
                    ready = None
                    if side is not None:
                        ready = torch.cuda.Event()
                        ready.record(side)
                    while not stop.is_set():
                        try:
                            buffer.put((item, ready), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            buffer.put(_END)
        except BaseException as err:  # handed to the consumer
            buffer.put(err)

    thread = threading.Thread(target=produce, daemon=True, name="gnnrec-prefetch")
    thread.start()
    try:
        while True:
            got = buffer.get()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            item, ready = got
            if ready is not None:
                consumer = torch.cuda.current_stream(device)
                consumer.wait_event(ready)
                for tensor in tensors_in(item):
                    if tensor.is_cuda:
                        tensor.record_stream(consumer)
            yield item
    finally:
        # A consumer that stops early (an exception, a break) waits for the producer to finish
        # its item and return: no thread is left inside torch while the process exits.
        stop.set()
        while thread.is_alive():
            try:
                buffer.get(timeout=0.1)  # unblocks a producer waiting to hand something over
            except queue.Empty:
                pass
