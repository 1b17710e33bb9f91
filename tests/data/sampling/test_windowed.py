import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.data.sampling.distributed import Partition
from tinytorch.data.sampling.windowed import (
    WindowedShuffleSampler,
    plan_windows,
    window_chunks,
    windowed_order,
)


class Shards:
    def __init__(self, sizes):
        self.shard_starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)


@given(
    st.lists(st.integers(1, 20), min_size=1, max_size=12),
    st.integers(1, 5),
    st.integers(0, 2**32),
    st.integers(0, 9),
)
def test_windowed_order_is_a_permutation_with_windows_of_k_shards(sizes, window, seed, epoch):
    starts = Shards(sizes).shard_starts
    order = windowed_order(starts, window, seed, epoch)
    assert sorted(order.tolist()) == list(range(int(starts[-1])))
    np.testing.assert_array_equal(order, windowed_order(starts, window, seed, epoch))
    shard_of = np.searchsorted(starts, order, side="right") - 1
    # Consecutive groups of at most `window` distinct shards: each shard appears in one group.
    position = 0
    seen = set()
    while position < len(order):
        group = set()
        start = position
        while position < len(order) and (len(group) < window or shard_of[position] in group):
            group.add(int(shard_of[position]))
            position += 1
        assert not (group & seen)
        seen |= group
        assert position > start


def test_golden_order():
    starts = Shards([3, 3, 3]).shard_starts
    # Pinned (a change to the stream must be deliberate): shards {0, 1} first, shuffled together,
    # then shard 2. Changed deliberately with the split across ranks (was 1, 5, 0, 4, 3, 2, 8, 7, 6):
    # each window's shuffle is now keyed by its first position in the stream.
    assert windowed_order(starts, 2, 0, 0).tolist() == [2, 4, 0, 1, 3, 5, 7, 8, 6]
    # Two ranks: positions 0-4 and 5-9 of the stream 0..8 (shard order 0, 1, 2), the last one
    # padded with the stream's first sample; windows of 2 pieces within each rank.
    assert windowed_order(starts, 2, 0, 0, num_replicas=2, rank=0).tolist() == [2, 4, 0, 1, 3]
    assert windowed_order(starts, 2, 0, 0, num_replicas=2, rank=1).tolist() == [8, 6, 7, 5, 0]


def test_sampler_epochs_differ_and_replay():
    sampler = WindowedShuffleSampler(Shards([10, 10, 10]), 2, seed=5)
    assert len(sampler) == 30
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_planning_goes_window_by_window():
    starts = Shards([5, 5, 5, 5, 5]).shard_starts
    chunks = list(window_chunks(starts, 2, 3, 1))
    assert [len(c) for c in chunks] == [10, 10, 5]
    np.testing.assert_array_equal(np.concatenate(chunks), windowed_order(starts, 2, 3, 1))


class ReadAheadShards(Shards):
    def __init__(self, sizes):
        super().__init__(sizes)
        self.calls = []

    def read_ahead(self, shards):
        self.calls.append(list(shards))


def test_the_next_window_is_read_ahead_as_planning_reaches_each_window():
    dataset = ReadAheadShards([5, 5, 5, 5, 5])
    sampler = WindowedShuffleSampler(dataset, 2, seed=3)
    windows = [list(w.shards) for w in plan_windows(dataset.shard_starts, 2, 3, 1)]
    seen = []
    for k, chunk in enumerate(sampler.index_chunks(1)):
        # before window k's indices are handed out, window k + 1 is on its way
        assert dataset.calls == windows[1 : k + 2]
        seen.append(sorted({int(np.searchsorted(dataset.shard_starts, i, side="right")) - 1 for i in chunk}))
    assert seen == [sorted(w) for w in windows]
    np.testing.assert_array_equal(  # the order itself is unchanged
        np.concatenate(list(sampler.index_chunks(1))), windowed_order(dataset.shard_starts, 2, 3, 1)
    )


def stream_of(starts, seed, epoch):
    """Reference: the epoch's samples with shards in the shuffled order, each shard in file order."""
    shards = window_shards_order(starts, seed, epoch)
    return np.concatenate([np.arange(starts[i], starts[i + 1]) for i in shards] + [np.empty(0, int)])


def window_shards_order(starts, seed, epoch):
    from tinytorch.data.seeding import Stream, derive_rng

    return derive_rng(seed, Stream.STREAM_ORDER, epoch).permutation(len(starts) - 1)


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 15), min_size=1, max_size=10),
    window=st.integers(1, 4),
    world=st.integers(1, 7),
    drop_last=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
    epoch=st.integers(0, 20),
)
def test_ranks_split_the_stream_into_equal_contiguous_windowed_parts(
    sizes, window, world, drop_last, seed, epoch
):
    starts = Shards(sizes).shard_starts
    n = int(starts[-1])
    samplers = [
        WindowedShuffleSampler(
            Shards(sizes), window, seed=seed, num_replicas=world, rank=r, drop_last=drop_last
        )
        for r in range(world)
    ]
    orders = [s.indices(epoch) for s in samplers]
    count = n // world if drop_last else -(-n // world)
    assert [len(s) for s in samplers] == [len(o) for o in orders] == [count] * world
    # Rank r holds exactly positions [r * count, (r + 1) * count) of the (padded or cut) stream.
    stream = stream_of(starts, seed, epoch)
    padded = stream[: count * world] if drop_last else np.resize(stream, count * world)
    for r, order in enumerate(orders):
        np.testing.assert_array_equal(np.sort(order), np.sort(padded[r * count : (r + 1) * count]))
    everything = np.concatenate(orders)
    if drop_last:  # disjoint: no sample twice, n % world left out
        assert len(np.unique(everything)) == len(everything) == n - n % world
    else:  # every sample, and only the first total_size - n of the stream twice
        assert set(everything.tolist()) == set(range(n))
        assert len(everything) - n == count * world - n
        assert sorted(np.flatnonzero(np.bincount(everything, minlength=n) > 1)) == sorted(
            stream[: count * world - n]
        )
    # Windowed per rank: consecutive groups of at most `window` pieces, each piece one shard's
    # contiguous records, all but a rank's first and last pieces whole shards.
    for r, order in enumerate(orders):
        windows = plan_windows(starts, window, seed, epoch, Partition(world, r, drop_last))
        assert all(len(w.pieces) <= window for w in windows)
        pieces = [p for w in windows for p in w.pieces]
        partial = [p for p in pieces if (p[1], p[2]) != (starts[p[0]], starts[p[0] + 1])]
        ranges = len(list(Partition(world, r, drop_last).span(n)))  # more than one where padding wraps
        assert len(partial) <= 2 * ranges
        begin = 0
        for w in windows:
            part = order[begin : begin + w.size]
            expected = np.concatenate([np.arange(a, b) for _, a, b in w.pieces])
            np.testing.assert_array_equal(np.sort(part), np.sort(expected))
            begin += w.size
        # pure: a fresh sampler, and planning from any start, give the same order
        again = WindowedShuffleSampler(
            Shards(sizes), window, seed=seed, num_replicas=world, rank=r, drop_last=drop_last
        )
        np.testing.assert_array_equal(again.indices(epoch), order)
        start = len(order) // 2
        tail = list(again.index_chunks(epoch, start=start))
        np.testing.assert_array_equal(np.concatenate(tail) if tail else order[:0], order[start:])


def test_one_replica_is_the_whole_order():
    dataset = Shards([7, 3, 9, 1])
    whole = WindowedShuffleSampler(dataset, 2, seed=4)
    one = WindowedShuffleSampler(dataset, 2, seed=4, num_replicas=1, rank=0)
    np.testing.assert_array_equal(whole.indices(2), one.indices(2))
    assert (whole.num_replicas, whole.rank, whole.drop_last) == (1, 0, False)


def test_resuming_does_not_shuffle_the_windows_it_skips(monkeypatch):
    from tinytorch.data.sampling import windowed

    starts = Shards([10] * 8).shard_starts
    full = windowed_order(starts, 2, 1, 0)
    shuffled = []
    original = windowed.Window.order

    def counting(self, *args, **kwargs):
        shuffled.append(self.position)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(windowed.Window, "order", counting)
    tail = np.concatenate(list(window_chunks(starts, 2, 1, 0, start=65)))
    np.testing.assert_array_equal(tail, full[65:])
    assert shuffled == [60]  # only the last window (positions 60-79) was shuffled


def test_read_ahead_follows_the_ranks_own_windows():
    dataset = ReadAheadShards([4, 4, 4, 4, 4, 4])
    sampler = WindowedShuffleSampler(dataset, 1, seed=0, num_replicas=2, rank=1)
    windows = plan_windows(dataset.shard_starts, 1, 0, 0, Partition(2, 1))
    list(sampler.index_chunks(0))
    assert dataset.calls == [w.shards for w in windows[1:]]
    assert len(windows) == 3  # 12 samples per rank: three whole shards of 4


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"window": 0}, ValueError, "window must be a positive int"),
        ({"window": 2.0}, TypeError, "window must be a positive int"),
        ({"window": 2, "num_replicas": 2}, ValueError, "got num_replicas= without rank="),
        ({"window": 2, "rank": 0}, ValueError, "got rank= without num_replicas="),
        (
            {"window": 2, "num_replicas": 2, "rank": 2},
            ValueError,
            r"Invalid rank 2, rank should be in the interval \[0, 1\]",
        ),
        ({"window": 2, "num_replicas": 0, "rank": 0}, ValueError, "num_replicas must be a positive int"),
        ({"window": 2, "drop_last": 1}, TypeError, "drop_last must be True or False"),
        ({"window": 2, "generator": object()}, TypeError, "takes a torch.Generator"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        WindowedShuffleSampler(Shards([3, 3]), **kwargs)


def test_numpy_scalars_and_a_torch_generator_are_accepted():
    torch = pytest.importorskip("torch")
    dataset = Shards([5, 5, 5])
    sampler = WindowedShuffleSampler(
        dataset,
        np.int64(2),
        generator=torch.Generator().manual_seed(9),
        num_replicas=np.int32(2),
        rank=np.int64(1),
    )
    assert (sampler.seed, sampler.window, sampler.num_replicas, sampler.rank) == (9, 2, 2, 1)
    assert all(type(v) is int for v in (sampler.seed, sampler.window, sampler.num_replicas, sampler.rank))
    np.testing.assert_array_equal(
        sampler.indices(0), WindowedShuffleSampler(dataset, 2, seed=9, num_replicas=2, rank=1).indices(0)
    )


def test_window_seed_and_epoch_are_checked_and_accept_numpy_integers():
    starts = Shards([3, 3, 3]).shard_starts
    np.testing.assert_array_equal(
        windowed_order(starts, np.int64(2), np.uint32(5), np.int8(1)), windowed_order(starts, 2, 5, 1)
    )
    with pytest.raises(ValueError, match="window must be a positive int, got 0"):
        windowed_order(starts, 0, 5, 1)
    with pytest.raises(TypeError, match="window must be a positive int, got float 2.0"):
        windowed_order(starts, 2.0, 5, 1)
    with pytest.raises(TypeError, match="epoch"):
        windowed_order(starts, 2, 5, 1.5)
