import pickle

import numpy as np
import pytest

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.workers import replies
from tinytorch.data.workers.errors import WorkerTimeoutError
from tinytorch.data.workers.messages import Done, Failed
from tinytorch.data.workers.prefetch import OrderedPrefetcher
from tinytorch.data.workers.replies import Inflight
from tinytorch.data.workers.streams import StreamPrefetcher


class FakePool:
    """Answers jobs in a scripted order, synchronously; records what was sent."""

    kind = "fake"
    pids = (41, 42, 43)

    def __init__(self, num_workers, reverse=False, fail=None, silent=()):
        self.num_workers = num_workers
        self.reverse, self.fail, self.silent = reverse, fail, set(silent)
        self.queue, self.sent, self.discarded = [], [], []
        self.max_inflight = 0

    def send(self, worker_id, generation, task):
        self.sent.append((worker_id, task.index))
        self.queue.append((worker_id, generation, task))

    def wait(self, timeout):
        if not self.queue:
            return []
        batch, self.queue = self.queue, []
        if self.reverse:
            batch.reverse()
        out = []
        for worker_id, generation, task in batch:
            if task.index in self.silent:
                continue
            if task.index == self.fail:
                out.append(
                    (
                        worker_id,
                        Failed(
                            generation,
                            task.index,
                            task.epoch,
                            worker_id,
                            99,
                            "fake",
                            "builtins.ValueError",
                            "tb",
                            pickle.dumps(ValueError("bad")),
                        ),
                    )
                )
            else:
                out.append((worker_id, Done(generation, task.index, task.index * 10)))
        return out

    def decode(self, worker_id, message):
        return message.payload

    def discard(self, worker_id, message):
        self.discarded.append(message.index)


def tasks(n):
    return iter([BatchTask(0, k, np.array([k])) for k in range(n)])


def test_results_come_back_in_order_despite_reversed_completion():
    pool = FakePool(3, reverse=True)
    prefetcher = OrderedPrefetcher(pool, Inflight(3), tasks(10), generation=1, window=2, timeout=0)
    assert [m.batch for m in prefetcher] == [k * 10 for k in range(10)]


def test_window_bounds_jobs_in_flight_per_worker():
    pool = FakePool(2)
    inflight = Inflight(2)
    prefetcher = OrderedPrefetcher(pool, inflight, tasks(20), generation=1, window=3, timeout=0)
    assert len(pool.sent) == 0  # nothing starts before the first next()
    for _ in prefetcher:
        assert max(inflight.count(w) for w in range(2)) <= 3
    assert len(pool.sent) == 20


def test_failure_is_raised_with_its_batch():
    pool = FakePool(2, fail=3)
    prefetcher = OrderedPrefetcher(pool, Inflight(2), tasks(6), generation=1, window=2, timeout=0)
    assert [next(prefetcher).batch for _ in range(3)] == [0, 10, 20]
    with pytest.raises(ValueError, match="fake worker 1 \\(pid 99\\) while making batch 3 of epoch 0"):
        next(prefetcher)


def test_timeout_names_the_batch_and_worker():
    pool = FakePool(2, silent={1})
    prefetcher = OrderedPrefetcher(pool, Inflight(2), tasks(4), generation=1, window=1, timeout=0.05)
    assert next(prefetcher).batch == 0
    with pytest.raises(WorkerTimeoutError, match="waiting for batch 1 from fake worker 1"):
        next(prefetcher)


def test_results_of_an_abandoned_generation_are_discarded():
    pool = FakePool(1)
    inflight = Inflight(1)
    old = OrderedPrefetcher(pool, inflight, tasks(5), generation=1, window=2, timeout=0)
    next(old)
    old.abandon()
    new = OrderedPrefetcher(pool, inflight, tasks(2), generation=2, window=2, timeout=0)
    assert [m.batch for m in new] == [0, 10]
    assert pool.discarded  # the old epoch's in-flight results were dropped, not delivered


@pytest.mark.parametrize("kind", ["map-style", "stream"])
def test_a_late_batch_is_reported_when_waiting_forever(kind, monkeypatch):
    """With timeout=0 a stuck worker is named with its pid after STALL_WARNING_SECONDS (the
    stream prefetcher waited silently)."""
    monkeypatch.setattr(replies, "POLL_SECONDS", 0.01)
    pool = FakePool(2, silent={1})
    if kind == "map-style":
        prefetcher = OrderedPrefetcher(pool, Inflight(2), tasks(4), generation=1, window=1, timeout=0)
    else:
        prefetcher = StreamPrefetcher(pool, Inflight(2), 0, generation=1, window=1, timeout=0)
    assert next(prefetcher).batch == 0
    monkeypatch.setattr(replies, "STALL_WARNING_SECONDS", 0.0)
    calls = []
    monkeypatch.setattr(
        pool, "wait", lambda timeout: calls.append(timeout) or ([] if len(calls) < 5 else 1 / 0)
    )
    with (
        pytest.warns(
            RuntimeWarning, match="waited 0 s for batch 1 from fake worker 1 \\(pid 42; `py-spy dump"
        ),
        pytest.raises(ZeroDivisionError),
    ):
        next(prefetcher)
    assert not prefetcher.healthy  # waiting failed: the pool is not reused


def test_a_worker_init_failure_reaches_a_stream_epoch():
    """A stream epoch took the failure (generation -1) for another epoch's reply and dropped it."""
    pool = FakePool(2)
    failure = Failed(
        -1, -1, -1, 1, 42, "fake", "builtins.ZeroDivisionError", "tb", pickle.dumps(ZeroDivisionError("init"))
    )
    pool.wait = lambda timeout: [(1, failure)]
    prefetcher = StreamPrefetcher(pool, Inflight(2), 0, generation=3, window=1, timeout=1)
    with pytest.raises(
        ZeroDivisionError, match="fake worker 1 \\(pid 42\\) while running worker_init_fn at start-up"
    ):
        next(prefetcher)
    assert not prefetcher.healthy
