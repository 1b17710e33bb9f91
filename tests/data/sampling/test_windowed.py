import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.data.sampling.windowed import WindowedShuffleSampler, windowed_order


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
    order = windowed_order(Shards([3, 3, 3]).shard_starts, 2, 0, 0).tolist()
    # Pinned: shards {0, 1} first, shuffled together, then shard 2.
    assert order == [1, 5, 0, 4, 3, 2, 8, 7, 6]


def test_sampler_epochs_differ_and_replay():
    sampler = WindowedShuffleSampler(Shards([10, 10, 10]), 2, seed=5)
    assert len(sampler) == 30
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_planning_goes_window_by_window():
    from tinytorch.data.sampling.windowed import window_chunks

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
    from tinytorch.data.sampling.windowed import window_shards

    dataset = ReadAheadShards([5, 5, 5, 5, 5])
    sampler = WindowedShuffleSampler(dataset, 2, seed=3)
    windows = [w.tolist() for w in window_shards(dataset.shard_starts, 2, 3, 1)]
    seen = []
    for k, chunk in enumerate(sampler.index_chunks(1)):
        # before window k's indices are handed out, window k + 1 is on its way
        assert dataset.calls == windows[1 : k + 2]
        seen.append(sorted({int(np.searchsorted(dataset.shard_starts, i, side="right")) - 1 for i in chunk}))
    assert seen == [sorted(w) for w in windows]
    np.testing.assert_array_equal(  # the order itself is unchanged
        np.concatenate(list(sampler.index_chunks(1))), windowed_order(dataset.shard_starts, 2, 3, 1)
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
