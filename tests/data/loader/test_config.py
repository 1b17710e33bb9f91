"""The loader's configuration: resolved once by pure functions, torch's conflicts, assignment rules."""

import random

import numpy as np
import pytest

from support.worker_datasets import Squares
from tinytorch import BatchSampler, DataLoader, IterableDataset, RandomSampler, TensorDataset
from tinytorch.data.collate.default import default_collate, default_convert
from tinytorch.data.loader.config import FIXED_AFTER_INIT, resolve_batching, resolve_workers


def ints(n):
    return TensorDataset(np.arange(n))


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(5))


def test_resolve_batching_builds_what_an_epoch_needs():
    b = resolve_batching(ints(10), batch_size=4, shuffle=True, seed=3)
    assert (b.batch_size, b.drop_last, b.shuffle, b.seed, b.batched) == (4, False, True, 3, True)
    assert isinstance(b.sampler, RandomSampler)
    assert b.sampler.seed == 3
    assert isinstance(b.batch_sampler, BatchSampler)
    assert b.index_source is b.batch_sampler
    assert b.library_sampler
    assert b.library_collate
    assert b.collate_fn is default_collate


def test_resolve_batching_without_batching_and_with_user_samplers():
    unbatched = resolve_batching(ints(3), batch_size=None, seed=0)
    assert not unbatched.batched
    assert unbatched.collate_fn is default_convert
    assert unbatched.index_source is unbatched.sampler
    mine = resolve_batching(ints(4), batch_sampler=[[0, 1], [2, 3]], seed=0)
    assert mine.batch_size is None
    assert mine.batched
    assert not mine.library_sampler
    assert resolve_batching(ints(4), batch_size=1, batch_sampler=[[0]], seed=0).batch_sampler == [[0]]
    stream = resolve_batching(Stream(), batch_size=2, seed=0)
    assert stream.iterable
    assert stream.batched
    assert stream.sampler is None


def test_resolve_batching_is_pure_and_the_result_immutable():
    a = resolve_batching(ints(10), batch_size=4, shuffle=True, seed=3)
    b = resolve_batching(ints(10), batch_size=4, shuffle=True, seed=3)
    assert a.sampler.indices(2).tolist() == b.sampler.indices(2).tolist()
    with pytest.raises(AttributeError):
        a.batch_size = 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shuffle": True, "sampler": [0]}, "shuffle=True is mutually exclusive with sampler="),
        ({"batch_sampler": [[0]], "batch_size": 4}, "batch_sampler is mutually exclusive"),
        ({"batch_sampler": [[0]], "batch_size": None}, "batch_sampler is mutually exclusive"),
        ({"batch_sampler": [[0]], "shuffle": True}, "batch_sampler is mutually exclusive"),
        ({"batch_sampler": [[0]], "sampler": [0]}, "batch_sampler is mutually exclusive"),
        ({"batch_sampler": [[0]], "drop_last": True}, "batch_sampler is mutually exclusive"),
        ({"batch_size": None, "drop_last": True}, "batch_size=None turns batching off"),
    ],
)
def test_torchs_conflicts_raise_value_error(kwargs, match):
    torch_data = pytest.importorskip("torch.utils.data")
    with pytest.raises(ValueError, match=match):
        resolve_batching(ints(4), seed=0, **kwargs)
    torch_kwargs = {"batch_size": 1, **kwargs}
    with pytest.raises(ValueError, match="mutually exclusive|disables auto-batching"):  # torch refuses too
        torch_data.DataLoader(list(range(4)), **torch_kwargs)


@pytest.mark.parametrize("kwargs", [{"shuffle": True}, {"sampler": [0]}, {"batch_sampler": [[0]]}])
def test_iterable_datasets_refuse_order_arguments_as_torch_does(kwargs):
    with pytest.raises(ValueError, match="IterableDataset: it decides its own order"):
        resolve_batching(Stream(), seed=0, **kwargs)


def test_resolve_workers_defaults_and_numpy_scalars():
    assert resolve_workers() == resolve_workers(num_workers=0)
    options = resolve_workers(num_workers=np.int64(2), timeout=np.float32(1.5), prefetch_factor=np.int8(3))
    assert (options.num_workers, options.timeout, options.prefetch_factor) == (2, 1.5, 3)
    assert type(options.num_workers) is int
    assert type(options.timeout) is float
    assert resolve_workers(num_workers=1).prefetch_factor == 2
    assert resolve_workers(num_workers=1, worker_type="thread").prefetch_factor == 4  # measured: +8-27%
    assert resolve_workers(num_workers=0, worker_type="thread").prefetch_factor is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_workers": -1}, ValueError, "num_workers must be a non-negative int, got -1; use 0"),
        ({"num_workers": 1.5}, TypeError, "num_workers must be a non-negative int"),
        ({"timeout": -1}, ValueError, "timeout must be a number >= 0"),
        ({"timeout": float("nan")}, ValueError, "timeout must be a number >= 0, got nan"),
        ({"prefetch_factor": 2}, ValueError, "prefetch_factor only applies with workers"),
        ({"persistent_workers": True}, ValueError, "persistent_workers=True needs num_workers > 0"),
        ({"worker_type": "fiber"}, ValueError, "worker_type must be 'process' or 'thread'"),
    ],
)
def test_resolve_workers_refuses_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        resolve_workers(**kwargs)


def test_fixed_attributes_raise_like_torch():
    loader = DataLoader(ints(8), batch_size=4)
    for name in FIXED_AFTER_INIT:
        with pytest.raises(
            ValueError, match=f"{name} attribute should not be set after DataLoader is initialized"
        ):
            setattr(loader, name, getattr(loader, name))
    assert {
        "dataset",
        "batch_size",
        "sampler",
        "batch_sampler",
        "drop_last",
        "persistent_workers",
    } <= FIXED_AFTER_INIT


def test_assigned_settings_are_checked_like_constructor_arguments():
    loader = DataLoader(ints(8), batch_size=4, num_workers=2)
    with pytest.raises(ValueError, match="num_workers must be a non-negative int"):
        loader.num_workers = -1
    assert loader.num_workers == 2
    with pytest.raises(TypeError, match="collate_fn must be callable"):
        loader.collate_fn = 3
    loader.num_workers = 0  # prefetch_factor was not given: it follows the workers
    assert loader.prefetch_factor is None
    loader.collate_fn = None  # back to the default
    assert loader.collate_fn is default_collate


def shift(batch, rng):
    return batch[0] + 1000


def tagged(samples):
    return np.array([s[0] for s in samples]) * -1


@pytest.mark.parametrize(
    ("kind", "persistent"), [("process", False), ("process", True), ("thread", False), ("thread", True)]
)
def test_settings_assigned_after_an_epoch_apply_to_every_worker_type(kind, persistent):
    """Issue 14: loader.batch_transform = f after the first epoch was ignored by workers."""
    in_process = DataLoader(ints(8), batch_size=4)
    workers = DataLoader(
        ints(8), batch_size=4, num_workers=2, worker_type=kind, persistent_workers=persistent
    )
    for loader in (in_process, workers):
        assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
        loader.batch_transform = shift
    expected = [b.tolist() for b in in_process]
    assert expected == [[1000, 1001, 1002, 1003], [1004, 1005, 1006, 1007]]
    assert [b.tolist() for b in workers] == expected
    for loader in (in_process, workers):
        loader.batch_transform = None
        loader.collate_fn = tagged
    assert (
        [b.tolist() for b in workers]
        == [b.tolist() for b in in_process]
        == [[0, -1, -2, -3], [-4, -5, -6, -7]]
    )
    workers.close()


def test_changing_num_workers_restarts_the_workers():
    loader = DataLoader(Squares(n=16), batch_size=4, num_workers=1, persistent_workers=True)
    list(loader)
    before = loader.worker_pids
    loader.num_workers = 2
    assert loader.worker_pids == []  # the old workers stopped at once
    list(loader)
    assert len(loader.worker_pids) == 2
    assert not set(before) & set(loader.worker_pids)
    loader.close()


def test_user_collate_fn_gets_a_plain_list():
    """Issue 13 item 2: a collate_fn of the user's received an internal StackedSamples."""
    seen = []

    def shuffling(batch):
        seen.append(type(batch))
        random.Random(0).shuffle(batch)
        batch.sort(key=lambda s: -int(s[0]))
        batch[0] = batch[0]
        return np.stack([s[0] for s in [*batch]])

    loader = DataLoader(TensorDataset(np.arange(8)), batch_size=4, collate_fn=shuffling)
    assert [b.tolist() for b in loader] == [[3, 2, 1, 0], [7, 6, 5, 4]]
    assert seen == [list, list]
    issue_input = DataLoader(
        TensorDataset(np.arange(8)), batch_size=4, collate_fn=lambda b: (random.shuffle(b), b)[1]
    )
    assert all(isinstance(b, list) and len(b) == 4 for b in issue_input)


def test_the_default_prefetch_factor_follows_the_worker_type():
    loader = DataLoader(ints(8), batch_size=4, num_workers=2)
    assert loader.prefetch_factor == 2  # torch's, for process workers
    loader.worker_type = "thread"
    assert loader.prefetch_factor == 4
    assert DataLoader(ints(8), num_workers=2, worker_type="thread", prefetch_factor=3).prefetch_factor == 3
