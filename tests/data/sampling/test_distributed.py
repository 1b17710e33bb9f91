"""DistributedSampler (torch's semantics), DistributedEvalSampler, and where rank and world size come from."""

import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch import DataLoader, DistributedEvalSampler, DistributedSampler, RandomSampler, TensorDataset
from tinytorch.data.sampling.distributed import Partition, resolve_replicas

torch = pytest.importorskip("torch")
tud = pytest.importorskip("torch.utils.data")

SIZES = [0, 1, 2, 3, 5, 7, 10, 16, 17]


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    """No torchrun variables unless a test sets them."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)


def torch_sampler(n, world, rank, **kwargs):
    return tud.DistributedSampler(range(n), num_replicas=world, rank=rank, **kwargs)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("world", [1, 2, 3, 4, 8])
def test_without_shuffle_the_indices_and_attributes_are_torchs(n, world, drop_last):
    for rank in range(world):
        ours = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False, drop_last=drop_last)
        theirs = torch_sampler(n, world, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs)
        assert ours.indices(5).tolist() == list(theirs)
        assert len(ours) == len(theirs)
        for name in (
            "num_replicas",
            "rank",
            "num_samples",
            "total_size",
            "epoch",
            "seed",
            "shuffle",
            "drop_last",
        ):
            assert getattr(ours, name) == getattr(theirs, name), name


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("n", [1, 5, 10, 17])
@pytest.mark.parametrize("world", [2, 3, 8])
def test_with_shuffle_a_permutation_is_padded_and_split_as_torch_does(n, world, drop_last):
    """Same structure given the same permutation: ours is our permutation at torch's positions.

    torch's own shuffled output is its randperm at the very same positions, so the two differ
    only in which permutation they draw (documented).
    """
    seed, epoch = 3, 2
    ours_perm = RandomSampler(range(n), seed=seed).indices(epoch)
    torch_perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).numpy()
    for rank in range(world):
        positions = list(torch_sampler(n, world, rank, shuffle=False, drop_last=drop_last))
        ours = DistributedSampler(range(n), num_replicas=world, rank=rank, seed=seed, drop_last=drop_last)
        ours.set_epoch(epoch)
        theirs = torch_sampler(n, world, rank, seed=seed, drop_last=drop_last)
        theirs.set_epoch(epoch)
        assert list(ours) == ours_perm[positions].tolist()
        assert list(theirs) == torch_perm[positions].tolist()


def test_loader_batches_equal_torchs_under_the_same_split():
    data = np.arange(23) * 10
    for rank in range(3):
        ours = DataLoader(
            TensorDataset(data),
            batch_size=4,
            sampler=DistributedSampler(data, num_replicas=3, rank=rank, shuffle=False),
        )
        theirs = tud.DataLoader(
            tud.TensorDataset(torch.from_numpy(data)),
            batch_size=4,
            sampler=torch_sampler(23, 3, rank, shuffle=False),
        )
        got = [b[0].tolist() for b in ours]
        assert got == [b[0].tolist() for b in theirs]
        assert len(ours) == len(theirs) == 2


def test_the_loader_plans_it_as_array_slices():
    sampler = DistributedSampler(range(1000), num_replicas=4, rank=1, seed=7)
    sampler.set_epoch(3)
    order = sampler.indices(3)
    assert order.dtype == np.int32
    assert order.flags.c_contiguous
    loader = DataLoader(TensorDataset(np.arange(1000)), batch_size=64, sampler=sampler)
    loader.set_epoch(3)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in loader]), order)


def test_epochs_differ_and_replay():
    sampler = DistributedSampler(range(50), num_replicas=2, rank=0, seed=1)
    first = list(sampler)
    sampler.set_epoch(1)
    assert sampler.epoch == 1
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    # one replica, shuffled: RandomSampler's order with the same seed
    whole = DistributedSampler(range(50), num_replicas=1, rank=0, seed=1)
    np.testing.assert_array_equal(whole.indices(4), RandomSampler(range(50), seed=1).indices(4))


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 60),
    world=st.integers(1, 9),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
    epoch=st.integers(0, 1000),
)
def test_ranks_partition_the_dataset(n, world, drop_last, shuffle, seed, epoch):
    def split():
        return [
            DistributedSampler(
                range(n), num_replicas=world, rank=r, shuffle=shuffle, seed=seed, drop_last=drop_last
            ).indices(epoch)
            for r in range(world)
        ]

    parts = split()
    count = n // world if drop_last else -(-n // world)
    assert [len(p) for p in parts] == [count] * world  # same number of batches on every rank
    everything = np.concatenate(parts).astype(np.int64)
    counts = np.bincount(everything, minlength=n)
    if drop_last:
        assert counts.max(initial=0) <= 1  # disjoint
        assert len(everything) == n - n % world
    else:
        assert counts.min(initial=1) >= 1  # covering
        assert len(everything) - n == count * world - n < world  # padding only, fewer than world
        order = DistributedSampler(range(n), 1, 0, shuffle=shuffle, seed=seed).indices(epoch)
        padding = count * world - n  # repeats the order's start (cyclically when n < padding)
        np.testing.assert_array_equal(counts, 1 + np.bincount(np.resize(order, padding), minlength=n))
    for a, b in zip(parts, split(), strict=True):  # a pure function of (seed, epoch)
        np.testing.assert_array_equal(a, b)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 60),
    world=st.integers(1, 9),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
    epoch=st.integers(0, 1000),
)
def test_eval_sampler_reads_every_sample_exactly_once(n, world, shuffle, seed, epoch):
    samplers = [
        DistributedEvalSampler(range(n), num_replicas=world, rank=r, shuffle=shuffle, seed=seed)
        for r in range(world)
    ]
    parts = [s.indices(epoch) for s in samplers]
    np.testing.assert_array_equal(
        np.sort(np.concatenate(parts)), np.arange(n)
    )  # no duplicates, union = dataset
    assert [len(s) for s in samplers] == [s.num_samples for s in samplers] == [len(p) for p in parts]
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    assert all(s.total_size == n for s in samplers)
    # the same permutation as the training sampler, without padding: rank r takes order[r::world]
    order = DistributedSampler(range(n), num_replicas=1, rank=0, shuffle=shuffle, seed=seed).indices(epoch)
    for r, p in enumerate(parts):
        np.testing.assert_array_equal(p, order[r::world])


def test_eval_sampler_has_no_padding_where_the_training_sampler_repeats():
    assert [list(DistributedEvalSampler(range(5), num_replicas=3, rank=r)) for r in range(3)] == [
        [0, 3],
        [1, 4],
        [2],
    ]
    assert [list(DistributedSampler(range(5), 3, r, shuffle=False)) for r in range(3)] == [
        [0, 3],
        [1, 4],
        [2, 0],
    ]


def test_padding_is_the_tail_of_each_ranks_part_as_documented():
    """Masking padding (module docs, way 3): rank r's first len(range(r, n, R)) samples are real."""
    n, world = 10, 4
    for r in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=r, seed=2)
        real = len(range(r, n, world))
        eval_part = DistributedEvalSampler(
            range(n), num_replicas=world, rank=r, shuffle=True, seed=2
        ).indices(0)
        np.testing.assert_array_equal(sampler.indices(0)[:real], eval_part)


# -- where num_replicas and rank come from -------------------------------------------------


def test_from_the_torchrun_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", " 3\n")
    sampler = DistributedSampler(range(10))
    assert (sampler.num_replicas, sampler.rank) == (4, 3)
    assert list(sampler) == list(DistributedSampler(range(10), num_replicas=4, rank=3))
    # arguments win over the environment, each on its own
    assert DistributedSampler(range(10), rank=1).rank == 1
    assert DistributedSampler(range(10), num_replicas=5).num_replicas == 5


def test_the_environment_is_read_when_the_sampler_is_built(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    first = DistributedSampler(range(4))
    monkeypatch.setenv("RANK", "1")
    assert (first.rank, DistributedSampler(range(4)).rank) == (0, 1)


class FakeDistributed(types.ModuleType):
    def __init__(self, world, rank, initialized=True):
        super().__init__("torch.distributed")
        self.world, self.r, self.initialized = world, rank, initialized

    def is_available(self):
        return True

    def is_initialized(self):
        return self.initialized

    def get_world_size(self):
        return self.world

    def get_rank(self):
        return self.r


def test_an_initialized_process_group_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "7")
    monkeypatch.setitem(sys.modules, "torch.distributed", FakeDistributed(3, 2))
    assert resolve_replicas() == (3, 2)
    monkeypatch.setitem(sys.modules, "torch.distributed", FakeDistributed(3, 2, initialized=False))
    assert resolve_replicas() == (8, 7)


def test_a_real_gloo_process_group():
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or dist.is_initialized():
        pytest.skip("torch.distributed unavailable or already initialized")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        sampler = DistributedSampler(range(6))
        assert (sampler.num_replicas, sampler.rank) == (1, 0)
    finally:
        dist.destroy_process_group()


def test_nothing_found_says_what_to_pass():
    with pytest.raises(ValueError, match=r"num_replicas=None.*WORLD_SIZE.*pass num_replicas=.*torchrun"):
        DistributedSampler(range(4))
    with pytest.raises(ValueError, match=r"DistributedEvalSampler got rank=None.*RANK environment variable"):
        DistributedEvalSampler(range(4), num_replicas=2)


def test_a_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match=r"WORLD_SIZE='two' is not an int.*num_replicas="):
        DistributedSampler(range(4), rank=0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match=r"Invalid rank 5, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4))


def test_torch_is_never_imported():
    code = (
        "import os, sys\n"
        "os.environ.update(WORLD_SIZE='2', RANK='1')\n"
        "from tinytorch import DistributedSampler\n"
        "assert list(DistributedSampler(range(5), shuffle=False)) == [1, 3, 0]\n"
        "assert 'torch' not in sys.modules\n"
        "print('clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "clean", out.stderr


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"num_replicas": 2, "rank": 2},
            ValueError,
            r"Invalid rank 2, rank should be in the interval \[0, 1\]",
        ),
        (
            {"num_replicas": 2, "rank": -1},
            ValueError,
            r"Invalid rank -1, rank should be in the interval \[0, 1\]",
        ),
        ({"num_replicas": 0, "rank": 0}, ValueError, "num_replicas must be a positive int"),
        ({"num_replicas": 2.0, "rank": 0}, TypeError, "num_replicas must be a positive int"),
        ({"num_replicas": 2, "rank": 1.0}, TypeError, r"rank must be an int in \[0, 1\], got float"),
        ({"num_replicas": 2, "rank": True}, TypeError, "rank must be an int"),
        ({"num_replicas": 2, "rank": 0, "seed": None}, TypeError, "same seed on every rank"),
        ({"num_replicas": 2, "rank": 0, "seed": -1}, ValueError, "seed must be a non-negative int"),
        ({"num_replicas": 2, "rank": 0, "shuffle": 1}, TypeError, "shuffle must be True or False"),
        ({"num_replicas": 2, "rank": 0, "drop_last": None}, TypeError, "drop_last must be True or False"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DistributedSampler(range(4), **kwargs)


def test_torchs_generator_argument_is_not_in_its_signature():
    with pytest.raises(TypeError):
        DistributedSampler(range(4), 2, 0, generator=torch.Generator())  # type: ignore[call-arg]


def test_numpy_scalars_are_accepted_and_stored_as_ints():
    sampler = DistributedSampler(
        range(10),
        num_replicas=np.int64(3),
        rank=np.uint8(1),
        shuffle=np.bool_(False),
        seed=np.uint64(2**64 - 1),
        drop_last=np.bool_(True),
    )
    assert (sampler.num_replicas, sampler.rank, sampler.seed) == (3, 1, 2**64 - 1)
    assert all(type(v) is int for v in (sampler.num_replicas, sampler.rank, sampler.seed))
    assert type(sampler.shuffle) is bool
    assert type(sampler.drop_last) is bool
    assert list(sampler) == [1, 4, 7]
    sampler.set_epoch(np.int64(2))
    assert sampler.epoch == 2
    assert type(sampler.epoch) is int


def test_sizes_use_exact_integers():
    """torch's math.ceil of a float division would be wrong above 2^53 samples; ours is exact."""
    n = 2**60 + 1
    assert Partition(3, 0).num_samples(n) == (n + 2) // 3
    assert Partition(3, 0, drop_last=True).num_samples(n) == n // 3
    assert Partition(3, 0).total_size(n) == 3 * ((n + 2) // 3)


def test_the_size_follows_the_dataset():
    data = list(range(10))
    sampler = DistributedSampler(data, num_replicas=4, rank=0)
    assert (sampler.num_samples, sampler.total_size) == (3, 12)
    data.extend(range(10, 12))
    assert (sampler.num_samples, sampler.total_size, len(sampler.indices(0))) == (3, 12, 3)
    data.append(12)
    assert (sampler.num_samples, sampler.total_size, len(sampler.indices(0))) == (4, 16, 4)


@pytest.mark.parametrize(("world", "rank"), [(0, 0), (2, 2), (2, -1)])
def test_a_partition_cannot_be_built_inconsistent(world, rank):
    with pytest.raises(ValueError, match="0 <= rank < num_replicas"):
        Partition(world, rank)


@pytest.mark.parametrize("sampler", ["windowed", "index_shuffle"])
def test_a_split_sampler_refuses_seed_none_as_the_docs_say(sampler):
    # Regression: WindowedShuffleSampler and IndexShuffleSampler with num_replicas=2 and no seed
    # drew a seed per rank, so rank 0 and rank 1 read overlapping samples (8 of 10 shared).
    from tinytorch import IndexShuffleSampler, WindowedShuffleSampler

    data = types.SimpleNamespace(shard_starts=np.array([0, 3, 6, 9, 12, 15, 18, 20]))

    def build(**kwargs):
        if sampler == "windowed":
            return WindowedShuffleSampler(data, window=2, **kwargs)
        return IndexShuffleSampler(range(20), **kwargs)

    name = "WindowedShuffleSampler" if sampler == "windowed" else "IndexShuffleSampler"
    with pytest.raises(ValueError, match=rf"{name} got num_replicas=2 and seed=None: .* pass seed=<int>"):
        build(num_replicas=2, rank=1)
    build(num_replicas=1, rank=0)  # one process: nothing to overlap with, a drawn seed is fine
    build()
    ranks = [build(num_replicas=2, rank=r, seed=7).indices(0) for r in (0, 1)]
    assert sorted(np.concatenate(ranks).tolist()) == list(range(20))
