import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch import DataLoader, IndexShuffleSampler, TensorDataset
from tinytorch.data.sampling.index_shuffle import index_shuffle


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 2**63), st.integers(0, 50), st.integers(1, 700))
def test_every_epoch_is_a_permutation_planned_in_chunks(n, seed, epoch, chunk):
    sampler = IndexShuffleSampler(range(n), seed=seed, chunk=chunk)
    chunks = list(sampler.index_chunks(epoch))
    assert all(len(c) <= chunk for c in chunks)  # the epoch never exists in whole
    order = sampler.indices(epoch)
    np.testing.assert_array_equal(np.concatenate(chunks) if chunks else order, order)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    assert order.dtype == np.int32


def test_order_is_a_pure_function_of_seed_and_epoch():
    a, b = IndexShuffleSampler(range(500), seed=1), IndexShuffleSampler(range(500), seed=1)
    np.testing.assert_array_equal(a.indices(3), b.indices(3))
    assert not np.array_equal(a.indices(3), a.indices(4))
    assert not np.array_equal(a.indices(3), IndexShuffleSampler(range(500), seed=2).indices(3))
    a.set_epoch(3)
    assert list(a) == a.indices(3).tolist()
    # Pinned: an accidental change to the bijection or its keys must be deliberate.
    assert IndexShuffleSampler(range(10), seed=0).indices(0).tolist() == [9, 0, 7, 2, 6, 5, 8, 3, 1, 4]


def test_positions_are_spread_uniformly():
    # Where sample 0 lands, over 4000 seeds: each of 10 places within 3.5 sigma of 400.
    n, trials = 10, 4000
    where = [int(np.flatnonzero(index_shuffle(np.arange(n), n, s, 0) == 0)[0]) for s in range(trials)]
    counts = np.bincount(where, minlength=n)
    sigma = np.sqrt(trials * (1 / n) * (1 - 1 / n))
    assert np.all(np.abs(counts - trials / n) < 3.5 * sigma), counts
    # and the order is far from the identity: mean displacement ~ n / 3 for a random order
    big = 30_000
    displacement = np.abs(index_shuffle(np.arange(big), big, 7, 0) - np.arange(big)).mean()
    assert abs(displacement - big / 3) < big * 0.01


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_reads_every_sample_once_for_any_workers(workers):
    x = np.arange(1000)
    loader = DataLoader(
        TensorDataset(x),
        batch_size=64,
        sampler=IndexShuffleSampler(x, seed=5),
        num_workers=workers,
        worker_type="thread",
    )
    seen = np.concatenate([b[0] for b in loader])
    np.testing.assert_array_equal(np.sort(seen), x)
    np.testing.assert_array_equal(seen, IndexShuffleSampler(x, seed=5).indices(0))


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 300),
    world=st.integers(1, 9),
    drop_last=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
    epoch=st.integers(0, 50),
    chunk=st.integers(1, 40),
)
def test_ranks_take_the_bijection_as_distributed_sampler_splits_a_permutation(
    n, world, drop_last, seed, epoch, chunk
):
    from tinytorch import DistributedSampler

    order = IndexShuffleSampler(range(n), seed=seed).indices(epoch)
    samplers = [
        IndexShuffleSampler(range(n), seed=seed, chunk=chunk, num_replicas=world, rank=r, drop_last=drop_last)
        for r in range(world)
    ]
    parts = [s.indices(epoch) for s in samplers]
    count = n // world if drop_last else -(-n // world)
    assert [len(s) for s in samplers] == [len(p) for p in parts] == [count] * world
    for r, part in enumerate(parts):
        # exactly DistributedSampler's positions of the same permutation
        positions = DistributedSampler(range(n), world, r, shuffle=False, drop_last=drop_last).indices(0)
        np.testing.assert_array_equal(part, order[positions])
        assert all(len(c) <= chunk for c in samplers[r].index_chunks(epoch))
        start = count // 2
        tail = list(samplers[r].index_chunks(epoch, start=start))
        np.testing.assert_array_equal(np.concatenate(tail) if tail else part[:0], part[start:])
    counts = np.bincount(np.concatenate(parts).astype(np.int64), minlength=n)
    if drop_last:
        assert counts.max(initial=0) <= 1
        assert counts.sum() == n - n % world
    else:
        assert counts.min(initial=1) >= 1
        assert counts.sum() - n == count * world - n


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"chunk": 0}, ValueError, "chunk must be a positive int"),
        ({"num_replicas": 2}, ValueError, "got num_replicas= without rank="),
        (
            {"num_replicas": 3, "rank": 3},
            ValueError,
            r"Invalid rank 3, rank should be in the interval \[0, 2\]",
        ),
        ({"drop_last": "no"}, TypeError, "drop_last must be True or False"),
        ({"generator": np.random.default_rng(0)}, TypeError, "takes a torch.Generator"),
        ({"seed": 1.5}, TypeError, "seed must be a non-negative int"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        IndexShuffleSampler(range(10), **kwargs)


def test_numpy_scalars_and_a_torch_generator_are_accepted():
    torch = pytest.importorskip("torch")
    sampler = IndexShuffleSampler(
        range(100),
        generator=torch.Generator().manual_seed(11),
        chunk=np.int64(7),
        num_replicas=np.int32(3),
        rank=np.int8(2),
    )
    assert (sampler.seed, sampler.chunk, sampler.num_replicas, sampler.rank) == (11, 7, 3, 2)
    assert all(type(v) is int for v in (sampler.seed, sampler.chunk, sampler.num_replicas, sampler.rank))
    np.testing.assert_array_equal(
        sampler.indices(1), IndexShuffleSampler(range(100), seed=11, num_replicas=3, rank=2).indices(1)
    )


def test_arguments_are_checked_and_accept_numpy_integers():
    positions = np.arange(10)
    np.testing.assert_array_equal(
        index_shuffle(positions, np.int64(10), np.uint8(3), np.int32(2)), index_shuffle(positions, 10, 3, 2)
    )
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 10\), got 0 to 10"):
        index_shuffle(np.arange(11), 10, 3, 2)
    with pytest.raises(TypeError, match="positions must be integers"):
        index_shuffle(np.array([1.5]), 10, 3, 2)
    with pytest.raises(TypeError, match="n must be a non-negative int, got float"):
        index_shuffle(positions, 10.0, 3, 2)
