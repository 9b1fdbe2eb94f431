"""Prefetching: order kept, errors delivered, the producer runs ahead, and training with it is
bit-identical to training without it."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from helpers import planted_config

from gnnrec.run import train_run
from gnnrec.train.prefetch import prefetch


def test_items_arrive_in_order():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))
    assert list(prefetch(iter(range(5)), depth=0)) == list(range(5))


def test_a_producer_error_reaches_the_consumer():
    def broken():
        yield 1
        raise RuntimeError("sampler failed on node 7")

    items = prefetch(broken())
    assert next(items) == 1
    with pytest.raises(RuntimeError, match="node 7"):
        next(items)


def test_the_producer_works_while_the_consumer_does():
    produced = []
    ahead = threading.Event()

    def producer():
        for i in range(10):
            produced.append(i)
            if len(produced) == 3:
                ahead.set()
            yield i

    items = prefetch(producer(), depth=2)
    assert next(items) == 0
    assert ahead.wait(timeout=5.0)  # items 1 and 2 were made while item 0 was in use
    time.sleep(0.05)
    assert len(produced) <= 4  # no further than the queue (2) plus the item in hand
    assert list(items) == list(range(1, 10))


def test_a_consumer_that_stops_early_stops_the_producer_and_waits_for_it():
    working, finished = threading.Event(), []

    def slow():
        for i in range(100):
            working.set()
            time.sleep(0.05)  # an item in the making when the consumer stops
            finished.append(i)
            yield i

    items = prefetch(slow(), depth=2)
    assert next(items) == 0
    working.clear()
    assert working.wait(timeout=5.0)
    items.close()  # the consumer is done (as when an exception leaves its loop)
    made = len(finished)
    time.sleep(0.2)
    assert len(finished) == made <= 5  # nothing made after close() returned
    assert not any(t.name == "gnnrec-prefetch" for t in threading.enumerate())


def test_sampled_training_is_the_same_with_and_without_prefetch(
    planted_dir, feature_cache, tmp_path
):
    sampled = ["train.mode=sampled", "train.fanouts=[4, 3]", "train.epochs=2"]
    for depth in (0, 2):
        train_run(
            planted_config(
                planted_dir,
                feature_cache,
                tmp_path / f"d{depth}",
                *sampled,
                f"train.prefetch={depth}",
            )
        )
    a = torch.load(tmp_path / "d0" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "d2" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_stream_bookkeeping_finds_every_tensor_of_an_item():
    """On a GPU every CUDA tensor of a prefetched item is recorded on the consumer's stream;
    the walker that finds them reaches into dataclasses, lists, tuples and dicts."""
    from dataclasses import dataclass

    from gnnrec.train.prefetch import tensors_in

    @dataclass
    class Inner:
        a: torch.Tensor
        b: list

    item = (1, [Inner(torch.zeros(2), [torch.ones(1), {"c": torch.full((3,), 2.0)}])], "text")
    assert [t.tolist() for t in tensors_in(item)] == [[0.0, 0.0], [1.0], [2.0, 2.0, 2.0]]
    if torch.cuda.is_available():  # the GPU path end to end (a device check)
        gpu = torch.zeros(2, device="cuda")
        assert [t.tolist() for t in prefetch([gpu], 2, device="cuda")] == [[0.0, 0.0]]
