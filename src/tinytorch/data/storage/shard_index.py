"""Index arithmetic of a sharded dataset: which shard holds a sample, and at which row.

Pure functions of the shards' sample counts; the readers never see a dataset-wide index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["ShardIndex", "group_by_shard", "touched_shards"]


class ShardIndex:
    """Global sample index <-> (shard, row) for shards of ``counts`` samples.

    Attributes:
        starts: ``(num_shards + 1,)`` int64: first sample index of each shard, then the total.
        even: the sample count of every shard but the last when they are all equal (writers fill
            shards evenly), else 0; a sample's shard is then a division instead of a search.
    """

    def __init__(self, counts: Sequence[int]) -> None:
        counts = [int(c) for c in counts]
        self.starts: NDArray[np.int64] = np.concatenate(([0], np.cumsum(counts, dtype=np.int64))).astype(
            np.int64
        )
        self.even = counts[0] if counts and counts[0] and all(c == counts[0] for c in counts[:-1]) else 0

    @property
    def num_shards(self) -> int:
        return len(self.starts) - 1

    @property
    def total(self) -> int:
        return int(self.starts[-1])

    def locate(self, idx: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """The shard holding each of samples ``idx`` (in ``[0, total)``) and the row in it.

        Returns:
            ``(shards, rows)``, two intp arrays shaped like ``idx``; shards with no samples are
            never returned.
        """
        if self.even:
            shards = np.minimum(idx // self.even, self.num_shards - 1)
        else:
            shards = np.searchsorted(self.starts, idx, side="right") - 1
        shards = shards.astype(np.intp, copy=False)
        rows = (idx - self.starts[shards]).astype(np.intp, copy=False)
        return shards, rows


def touched_shards(shards: NDArray[np.intp], num_shards: int) -> NDArray[np.intp]:
    """The distinct values of ``shards``, ascending (a mask, not a sort: ~1.5 us for 256)."""
    mask = np.zeros(num_shards, dtype=bool)
    mask[shards] = True
    return np.flatnonzero(mask)


def group_by_shard(shards: NDArray[np.intp]) -> list[tuple[int, NDArray[np.intp]]]:
    """``(shard, positions)`` for each distinct shard in ``shards``, ascending: ``positions``
    are the places in ``shards`` holding that shard, in their order."""
    order = np.argsort(shards, kind="stable")
    boundaries = np.flatnonzero(np.diff(shards[order])) + 1
    return [(int(shards[p[0]]), p) for p in np.split(order, boundaries) if len(p)]
