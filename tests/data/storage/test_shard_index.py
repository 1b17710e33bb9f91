"""Global sample index <-> (shard, row): pure arithmetic, checked against a brute force."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.data.storage.shard_index import ShardIndex, group_by_shard, touched_shards


@given(st.lists(st.integers(0, 7), min_size=1, max_size=8))
def test_locate_finds_each_samples_shard_and_row(counts):
    index = ShardIndex(counts)
    expected = [(k, r) for k, c in enumerate(counts) for r in range(c)]
    assert index.total == len(expected) == int(index.starts[-1])
    shards, rows = index.locate(np.arange(index.total, dtype=np.intp))
    assert list(zip(shards.tolist(), rows.tolist(), strict=True)) == expected
    assert shards.dtype == rows.dtype == np.intp


def test_even_shards_are_found_by_division():
    assert ShardIndex([4, 4, 4, 2]).even == 4
    assert ShardIndex([2, 5]).even == 2  # a last shard larger than the others is fine too
    assert ShardIndex([4, 3, 4]).even == 0
    assert ShardIndex([0, 0, 3]).even == 0  # empty shards: searched
    shards, rows = ShardIndex([2, 5]).locate(np.array([1, 2, 6]))
    assert shards.tolist() == [0, 1, 1]
    assert rows.tolist() == [1, 0, 4]
    assert ShardIndex([3, 0, 3]).locate(np.array([3]))[0].tolist() == [2]  # never an empty shard


def test_touched_and_grouped_shards():
    shards = np.array([3, 0, 3, 1, 0], dtype=np.intp)
    assert touched_shards(shards, 5).tolist() == [0, 1, 3]
    groups = group_by_shard(shards)
    assert [(k, p.tolist()) for k, p in groups] == [(0, [1, 4]), (1, [3]), (3, [0, 2])]
    assert group_by_shard(np.array([], dtype=np.intp)) == []
