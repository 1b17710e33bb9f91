"""Process pool specifics: staggered start under fork, its bounded hand-over, CPU helpers."""

import os
import time

import numpy as np
import pytest

from support.worker_datasets import Squares
from tinytorch import DataLoader
from tinytorch.data.workers import process
from tinytorch.data.workers.errors import WorkerDiedError, WorkerTimeoutError


def batches(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def same(a, b):
    return len(a) == len(b) and all(
        np.array_equal(x1, x2) and np.array_equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )


def test_fork_starts_worker_zero_at_once_and_the_others_at_the_first_wait():
    loader = DataLoader(Squares(n=200), batch_size=4, num_workers=3, multiprocessing_context="fork")
    epoch = iter(loader)
    assert len(loader.worker_pids) == 1  # only worker 0 so far: it already has its jobs
    first = next(epoch)
    assert len(loader.worker_pids) == 3
    rest = [(x.copy(), y.copy()) for x, y in epoch]
    assert same(
        [(first[0].copy(), first[1].copy()), *rest], batches(DataLoader(Squares(n=200), batch_size=4))
    )


def test_spawn_starts_every_worker_at_once():
    loader = DataLoader(Squares(n=16), batch_size=4, num_workers=2, multiprocessing_context="spawn")
    epoch = iter(loader)
    assert len(loader.worker_pids) == 2
    assert len(list(epoch)) == 4


def _never_announce(conn, late):
    if late is not None:
        time.sleep(3600)


def _die_before_announcing(conn, late):
    if late is not None:
        os._exit(7)


def test_a_worker_that_never_announces_itself_cannot_hang_the_loader(monkeypatch):
    monkeypatch.setattr(process, "announce_start", _never_announce)
    monkeypatch.setattr(process.ProcessPool, "announce_seconds", 0.2)
    loader = DataLoader(Squares(n=64), batch_size=4, num_workers=2, timeout=1.0)
    began = time.monotonic()
    with pytest.raises(WorkerTimeoutError, match="batch 1 from process worker 1"):
        list(loader)
    assert time.monotonic() - began < 10


def test_a_worker_that_dies_before_announcing_itself_is_reported(monkeypatch):
    monkeypatch.setattr(process, "announce_start", _die_before_announcing)
    loader = DataLoader(Squares(n=64), batch_size=4, num_workers=2)
    with pytest.raises(WorkerDiedError, match=r"process worker 1 \(pid \d+\) exited with code 7"):
        list(loader)


def test_move_to_cpu_moves_without_narrowing_the_affinity():
    if not hasattr(os, "sched_getaffinity") or process.current_cpu() is None:
        pytest.skip("needs Linux CPU affinity and sched_getcpu")
    allowed = os.sched_getaffinity(0)
    target = max(allowed)
    process.move_to_cpu(target)
    assert process.current_cpu() == target  # the move happens before the call returns
    assert os.sched_getaffinity(0) == allowed
    process.move_to_cpu(10**6)  # not allowed: nothing happens
    assert os.sched_getaffinity(0) == allowed
