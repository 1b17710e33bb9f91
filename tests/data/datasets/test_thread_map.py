"""ThreadMap: order, errors, and the lifecycle of a dataset's decode threads."""

from __future__ import annotations

import gc
import os
import pickle
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.data.datasets import thread_map
from tinytorch.data.datasets.thread_map import ThreadMap, default_num_threads
from tinytorch.data.worker_info import WorkerInfo, worker_info


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 6), st.lists(st.integers(), max_size=70))
def test_results_come_back_in_order_for_any_number_of_threads(threads, items):
    pool = ThreadMap(threads)
    try:
        assert pool.map(lambda x: x * 3, items) == [x * 3 for x in items]
    finally:
        pool.close()


def test_uneven_work_is_still_returned_in_order():
    pool = ThreadMap(3)
    items = list(range(24))
    out = pool.map(lambda x: (time.sleep(0.002 * (x % 5)), x)[1], items)
    pool.close()
    assert out == items


def test_the_earliest_failure_is_raised():
    def fail(x):
        if x in (7, 20):
            raise ValueError(f"item {x}")
        return x

    pool = ThreadMap(2)
    with pytest.raises(ValueError, match="item 7"):
        pool.map(fail, list(range(30)))
    pool.close()


def test_no_pool_for_one_thread_or_one_item():
    for pool, items in ((ThreadMap(0), [1, 2, 3]), (ThreadMap(1), [1, 2, 3]), (ThreadMap(4), [1])):
        seen = []
        assert pool.map(lambda x, seen=seen: seen.append(threading.current_thread()) or x, items) == items
        assert set(seen) == {threading.current_thread()}
        assert not pool.running


def test_lazy_start_close_and_restart():
    pool = ThreadMap(2)
    assert not pool.running
    names = set(pool.map(lambda _: threading.current_thread().name, range(16)))
    assert pool.running
    assert all(n.startswith("tinytorch-decode") for n in names)
    threads = list(pool._executor._threads)
    pool.close()
    pool.close()  # idempotent
    assert not pool.running
    assert not any(t.is_alive() for t in threads)
    assert pool.map(str, range(4)) == ["0", "1", "2", "3"]  # restarts
    pool.close()


def test_garbage_collection_stops_the_threads():
    pool = ThreadMap(2)
    pool.map(str, range(8))
    threads = list(pool._executor._threads)
    del pool
    gc.collect()
    for t in threads:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in threads)


def test_pickles_without_its_threads():
    pool = ThreadMap(3)
    pool.map(str, range(8))
    copy = pickle.loads(pickle.dumps(pool))
    assert copy.num_threads == 3
    assert not copy.running
    assert copy.map(str, range(3)) == ["0", "1", "2"]
    pool.close()
    copy.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_idle_pools_are_stopped_before_a_fork_and_a_busy_one_is_not_inherited():
    idle = ThreadMap(2)
    idle.map(str, range(8))
    assert idle.running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            alive = [t for t in threading.enumerate() if t.name.startswith("tinytorch-decode")]
            ok = not alive and not idle.running and idle.map(str, range(3)) == ["0", "1", "2"]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    os.close(read)
    assert not idle.running  # stopped by the fork hook in the parent too
    idle.close()


def test_default_threads_follow_the_cpus_available():
    assert 1 <= default_num_threads() <= 8
    assert default_num_threads() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cores", "kind", "workers", "expected"),
    [
        (2, "process", 2, 1),  # one decoder per worker: two each ran 17-18% slower (docs/benchmarks.md)
        (8, "process", 2, 4),
        (2, "process", 3, 1),  # never 0
        (64, "process", 2, 8),  # at most 8, as outside workers
        (8, "thread", 2, 8),  # thread workers share one dataset, so one pool
        (64, None, 0, 8),
    ],
)
def test_process_workers_share_the_cores_among_their_decoders(monkeypatch, cores, kind, workers, expected):
    monkeypatch.setattr(thread_map, "available_cores", lambda: cores)
    if kind is None:
        assert default_num_threads() == expected
        return
    with worker_info(WorkerInfo(0, workers, 0, None, kind, os.getpid())):
        assert default_num_threads() == expected


def test_an_unset_count_is_decided_in_the_process_that_maps_and_pickles_unset(monkeypatch):
    pool = ThreadMap(None)
    monkeypatch.setattr(thread_map, "available_cores", lambda: 4)
    assert pool.threads == 4
    copy = pickle.loads(pickle.dumps(pool))
    assert copy.num_threads is None  # a spawned worker decides its own
    assert ThreadMap(3).threads == 3
