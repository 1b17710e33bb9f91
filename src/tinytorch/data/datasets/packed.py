"""``PackedSequence``: many strings or byte strings with no Python object per item.

A dataset that holds a list of a million Python strings makes every forked worker copy that
list page by page as it reads it: reading an object writes its reference count, and a write
to a shared copy-on-write page copies the page. Worker memory then grows epoch after epoch
until each worker holds the whole list (the problem reported in pytorch#13246). Two numpy
arrays (the bytes, and the offsets) have no reference counts per item, so workers share them
for good. The loader also calls ``gc.freeze()`` before forking workers, which stops the
collector from touching the parent's objects, but only storage without per-item objects
removes the cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.indexing import check_index

__all__ = ["PackedSequence"]


class PackedSequence(Sequence[Any]):
    """A read-only sequence of ``str`` (UTF-8) or ``bytes`` items, packed into numpy arrays.

    Attributes:
        data: all items' bytes, ``(total,)`` uint8.
        offsets: ``(n + 1,)`` int64; item ``i`` is ``data[offsets[i]:offsets[i + 1]]``.
    """

    def __init__(self, items: Iterable[str | bytes]) -> None:
        values = list(items)
        kinds = {type(v) for v in values}
        if not kinds <= {str, bytes} or len(kinds) > 1:
            raise TypeError(
                f"PackedSequence holds only str or only bytes items, got {sorted(k.__name__ for k in kinds)}"
            )
        self.text = kinds == {str}
        encoded = [v.encode() if isinstance(v, str) else v for v in values]
        self.offsets: NDArray[np.int64] = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=self.offsets[1:])
        self.data: NDArray[np.uint8] = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()

    uses_global_rngs = False
    """Reads draw no random numbers (see :func:`tinytorch.data.seeding.draws_from_global_rngs`)."""

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = check_index(index, len(self), owner="PackedSequence")
        raw = self.data[self.offsets[i] : self.offsets[i + 1]].tobytes()
        return raw.decode() if self.text else raw
