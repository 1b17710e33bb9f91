"""The two pool strategies and an epoch's lease, with fake pools (no threads, no processes)."""

from typing import ClassVar

import numpy as np
import pytest

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.loader import pools as pools_module
from tinytorch.data.loader.pools import PerEpochPools, PersistentPools, WorkerBatches, ordered
from tinytorch.data.workers.errors import WorkerDiedError, WorkerTimeoutError
from tinytorch.data.workers.loop import PoolSpec
from tinytorch.data.workers.messages import Done


class FakePool:
    """Answers every job at once with index * 10; records its lifecycle."""

    kind = "fake"
    started: ClassVar[list] = []

    def __init__(self, spec, die_at=None):
        self.spec, self.num_workers = spec, spec.num_workers
        self.queue, self.events, self.die_at = [], [], die_at
        FakePool.started.append(self)

    def start(self):
        self.events.append("start")

    def send(self, worker_id, generation, task):
        self.queue.append((worker_id, generation, task))

    def wait(self, timeout):
        out, self.queue = self.queue, []
        for _, _, task in out:
            if task.index == self.die_at:
                raise WorkerDiedError("worker 0 died")
        return [(w, Done(g, t.index, t.index * 10)) for w, g, t in out]

    def decode(self, worker_id, message):
        return message.payload

    def discard(self, worker_id, message):
        pass

    @property
    def pids(self):
        return [] if "shutdown" in self.events else [1, 2]

    def shutdown(self, *, wait=True):
        self.events.append(f"shutdown(wait={wait})")

    def reap(self, *, block):
        self.events.append("reap")
        return True

    def stopper(self):
        return lambda: self.events.append("stopped")


@pytest.fixture(autouse=True)
def fake_pools(monkeypatch):
    FakePool.started = []
    monkeypatch.setattr(pools_module, "make_pool", lambda kind, spec, context=None: FakePool(spec))


def spec(workers=2):
    return PoolSpec(lambda task: (task, None), dataset=None, num_workers=workers, seed=0)


def tasks(n):
    return (BatchTask(0, k, np.array([k])) for k in range(n))


def run(pools, the_spec, n):
    epoch = WorkerBatches(pools, the_spec, ordered(tasks(n), window=2, timeout=0))
    batches = [made.batch for made in epoch]
    epoch.close(True)
    return batches


def test_per_epoch_pools_start_a_pool_per_epoch_and_stop_it_in_the_background():
    pools, the_spec = PerEpochPools("fake", None), spec()
    assert run(pools, the_spec, 5) == [0, 10, 20, 30, 40]
    assert run(pools, the_spec, 3) == [0, 10, 20]
    first, second = FakePool.started
    assert first.events == ["start", "shutdown(wait=False)", "reap"]  # reaped when the next started
    pools.close()
    assert second.events == ["start", "shutdown(wait=False)", "reap"]


def test_per_epoch_pools_wait_for_workers_of_an_epoch_that_did_not_finish():
    pools = PerEpochPools("fake", None)
    epoch = WorkerBatches(pools, spec(), ordered(tasks(5), window=2, timeout=0))
    next(epoch)
    epoch.close(False)
    assert FakePool.started[0].events == ["start", "shutdown(wait=True)"]


def test_persistent_pools_keep_one_pool_for_every_epoch():
    pools, the_spec = PersistentPools("fake", None), spec()
    for _ in range(3):
        assert run(pools, the_spec, 4) == [0, 10, 20, 30]
    assert len(FakePool.started) == 1
    pools.close()
    assert FakePool.started[0].events == ["start", "shutdown(wait=True)"]


def test_persistent_pools_restart_when_the_spec_changed():
    pools = PersistentPools("fake", None)
    run(pools, spec(), 2)
    run(pools, spec(), 2)  # a new configuration: new workers run it
    assert len(FakePool.started) == 2
    assert FakePool.started[0].events == ["start", "shutdown(wait=True)"]


def test_a_newer_epoch_supersedes_the_running_one_with_an_error_not_a_short_epoch():
    pools, the_spec = PersistentPools("fake", None), spec()
    old = WorkerBatches(pools, the_spec, ordered(tasks(6), window=2, timeout=0))
    assert next(old).batch == 0
    new = WorkerBatches(pools, the_spec, ordered(tasks(6), window=2, timeout=0))
    with pytest.raises(RuntimeError, match="superseded by a newer iter\\(loader\\)"):
        next(old)
    assert [m.batch for m in new] == [0, 10, 20, 30, 40, 50]
    old.close(False)  # the superseded epoch's end does not touch the pool the new one uses
    assert len(FakePool.started) == 1
    assert FakePool.started[0].events == ["start"]


def test_a_broken_persistent_pool_is_replaced_before_the_next_epoch(monkeypatch):
    pools, the_spec = PersistentPools("fake", None), spec()
    monkeypatch.setattr(pools_module, "make_pool", lambda kind, s, context=None: FakePool(s, die_at=2))
    epoch = WorkerBatches(pools, the_spec, ordered(tasks(6), window=2, timeout=0))
    with pytest.raises(WorkerDiedError):
        list(epoch)
    epoch.close(False)
    assert FakePool.started[0].events == ["start", "shutdown(wait=True)"]
    monkeypatch.setattr(pools_module, "make_pool", lambda kind, s, context=None: FakePool(s))
    assert run(pools, the_spec, 4) == [0, 10, 20, 30]
    assert len(FakePool.started) == 2


def test_a_timeout_marks_the_pool_unhealthy(monkeypatch):
    class Silent(FakePool):
        def wait(self, timeout):
            return []

    monkeypatch.setattr(pools_module, "make_pool", lambda kind, s, context=None: Silent(s))
    pools = PerEpochPools("fake", None)
    epoch = WorkerBatches(pools, spec(), ordered(tasks(3), window=2, timeout=0.05))
    with pytest.raises(WorkerTimeoutError):
        next(epoch)
    epoch.close(False)
    assert FakePool.started[0].events == ["start", "shutdown(wait=True)"]


def test_closing_the_loader_ends_running_epochs_with_a_clear_error():
    for pools in (PersistentPools("fake", None), PerEpochPools("fake", None)):
        epoch = WorkerBatches(pools, spec(), ordered(tasks(6), window=2, timeout=0))
        next(epoch)
        pools.close()
        with pytest.raises(RuntimeError, match="DataLoader.close\\(\\) stopped its workers"):
            next(epoch)


def test_stoppers_hold_no_spec_and_stop_every_live_pool():
    pools, the_spec = PersistentPools("fake", None), spec()
    run(pools, the_spec, 2)
    stoppers = pools.stoppers
    assert the_spec not in [getattr(stop, "__self__", None) for stop in stoppers._live.values()]
    stoppers()
    assert FakePool.started[0].events[-1] == "stopped"
