"""Defects an adversarial tester found at the loader's boundary; each input with the right value."""

import gc
import json
import multiprocessing as mp
import time

import numpy as np
import pytest

from support.worker_datasets import (
    RaisesPickleBomb,
    RaisesTagged,
    Short,
    Squares,
    StopsEarly,
    Tagged,
    fail_in_worker_one,
)
from tinytorch import (
    DataLoader,
    IterableDataset,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
)
from tinytorch.data.workers.errors import WorkerError

WORKERS = [{"num_workers": 2}, {"num_workers": 2, "worker_type": "thread"}]


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    gc.collect()
    deadline = time.monotonic() + 5
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mp.active_children()


@pytest.mark.parametrize("workers", WORKERS)
def test_a_stop_iteration_in_user_code_is_an_error_not_a_short_epoch(workers):
    """It ended the epoch after 2 of 4 batches, silently (with num_workers=0 it was an error)."""
    for loader in (
        DataLoader(StopsEarly(), batch_size=2, **workers),
        DataLoader(TensorDataset(np.arange(8)), batch_size=2, collate_fn=_stop_at_4, **workers),
    ):
        with pytest.raises(WorkerError, match="Caught builtins.StopIteration"):
            list(loader)
    with pytest.raises(RuntimeError):
        list(DataLoader(StopsEarly(), batch_size=2))


def _stop_at_4(samples):
    if any(int(s[0]) == 4 for s in samples):
        raise StopIteration
    return samples


class Counting(IterableDataset):
    def __iter__(self):
        return iter(range(10))


@pytest.mark.parametrize("workers", [{}, {"num_workers": 2, "worker_type": "thread"}])
def test_two_iterators_over_a_stream_read_two_streams(workers):
    """They shared one: the first read the second's stream, the second ended early."""
    loader = DataLoader(Counting(), batch_size=2, **workers)
    a = iter(loader)
    first = [next(a).tolist()]
    b = iter(loader)
    second = [x.tolist() for x in b]
    first += [x.tolist() for x in a]
    if workers:  # each worker reads the whole (unsplit) stream
        assert sorted(x for batch in first for x in batch) == sorted(list(range(10)) * 2)
        assert sorted(x for batch in second for x in batch) == sorted(list(range(10)) * 2)
    else:
        assert first == second == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


@pytest.mark.parametrize(
    "make",
    [
        lambda ds: DataLoader(ds, sampler=[np.uint64(2**64 - 1)], batch_size=1),
        lambda ds: DataLoader(ds, batch_sampler=[np.array([2**64 - 1], dtype=np.uint64)]),
        lambda ds: DataLoader(ds, sampler=[2**63 + 3], batch_size=None),
        lambda ds: DataLoader(Subset(ds, np.array([2**64 - 1], dtype=np.uint64))),
        lambda ds: DataLoader(ds, sampler=SubsetRandomSampler(np.array([2**64 - 1], dtype=np.uint64))),
    ],
)
def test_huge_unsigned_indices_are_out_of_range_not_wrapped(make):
    """np.uint64(2**64 - 1) became -1 and read the last sample."""
    with pytest.raises(IndexError, match="18446744073709551615|9223372036854775811|beyond any"):
        list(make(TensorDataset(np.arange(10.0))))


def test_a_ragged_batch_from_a_sampler_is_named():
    with pytest.raises(ValueError, match="a batch is one flat list of ints"):
        list(DataLoader(TensorDataset(np.arange(4)), batch_sampler=[[1, [2, 3]]]))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("kind", ["process", "thread"])
def test_a_failing_worker_init_fn_is_reported_every_time_with_its_exception(kind, persistent, stream):
    """The real error was sometimes lost ('exited with code 0'); persistent thread workers hung
    in the next epoch and persistent process workers repeated a stale death. An IterableDataset's
    epoch dropped the failure as another epoch's reply: process workers reported 'exited with
    code 0', thread workers waited until the timeout (forever without one)."""
    loader = DataLoader(
        Counting() if stream else Squares(n=16),
        batch_size=4,
        num_workers=2,
        worker_type=kind,
        persistent_workers=persistent,
        worker_init_fn=fail_in_worker_one,
        timeout=30,
    )
    for _ in range(4 if kind == "process" else 2):
        with pytest.raises(ZeroDivisionError, match="while running worker_init_fn at start-up"):
            list(loader)
    loader.close()


def test_a_state_past_the_end_of_an_epoch_is_refused():
    loader = DataLoader(TensorDataset(np.arange(20)), batch_size=2, seed=0)
    state = loader.state_dict()
    for bad in (11, 10**9):
        with pytest.raises(
            ValueError, match=f"batches_delivered'\\] is {bad}, but an epoch of this loader has 10"
        ):
            loader.load_state_dict({**state, "batches_delivered": bad})
    loader.load_state_dict(json.loads(json.dumps({**state, "batches_delivered": 10})))  # the epoch's end


@pytest.mark.parametrize("setting", [("num_workers", 1), ("worker_type", "thread")])
def test_changing_the_workers_mid_epoch_lets_the_running_epoch_finish(setting):
    """The running epoch died with 'DataLoader.close() stopped its workers'."""
    loader = DataLoader(Squares(n=40), batch_size=4, num_workers=2, persistent_workers=True)
    epoch = iter(loader)
    got = [next(epoch)[1].tolist() for _ in range(3)]
    setattr(loader, *setting)
    got += [y.tolist() for _, y in epoch]
    assert got == [[k * k for k in range(4 * b, 4 * b + 4)] for b in range(10)]
    assert len(list(loader)) == 10  # the next epoch runs with the new setting
    loader.close()


@pytest.mark.parametrize("workers", WORKERS)
def test_a_worker_error_keeps_its_attributes(workers):
    with pytest.raises(Tagged) as info:
        list(DataLoader(RaisesTagged(), batch_size=2, **workers))
    assert info.value.path == "/data/0.jpg"


@pytest.mark.parametrize("workers", WORKERS)
def test_an_exception_whose_pickling_raises_is_still_reported(workers):
    """A thread worker died and the loader waited forever."""
    with pytest.raises(WorkerError, match="PickleBomb"):
        list(DataLoader(RaisesPickleBomb(), batch_size=2, timeout=20, **workers))


@pytest.mark.parametrize(
    ("none", "error", "match"),
    [(False, ValueError, "returned 1 samples for 2 indices"), (True, TypeError, "returned NoneType")],
)
def test_a_batch_read_must_give_one_sample_per_index(none, error, match):
    with pytest.raises(error, match=match):
        list(DataLoader(Short(none=none), batch_size=2))


def test_weights_whose_sum_overflows_still_draw():
    drawn = WeightedRandomSampler([1e308, 1e308], 3, seed=0).indices(0)
    assert set(drawn.tolist()) <= {0, 1}
