"""``TensorDataset``: samples are aligned rows of in-memory arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinytorch.data.datasets.base import Dataset
from tinytorch.data.datasets.indexing import check_index, check_indices, is_index_list
from tinytorch.data.datasets.stacked import StackedSamples

__all__ = ["TensorDataset"]


class TensorDataset(Dataset[tuple[Any, ...]]):
    """Sample ``i`` is ``(arrays[0][i], arrays[1][i], ...)``.

    Args:
        *arrays: numpy arrays or array-likes (lists, torch CPU tensors, anything
            ``numpy.asarray`` takes without copying where it can), each with at
            least one dimension and the same length along axis 0.

    ``ds[i]`` is one sample; as in PyTorch, ``ds[2:5]``, ``ds[[3, 1]]`` or a boolean
    mask give the tuple of those rows of every array. ``__getitems__`` reads a whole batch
    with one fancy-indexing operation per array and returns :class:`StackedSamples`, so
    ``default_collate`` has nothing left to do.

    Raises:
        ValueError: no arrays, a 0-d array, or arrays of different lengths.
    """

    def __init__(self, *arrays: ArrayLike) -> None:
        if not arrays:
            raise ValueError("TensorDataset needs at least one array, e.g. TensorDataset(x, y)")
        converted = [_as_array(a, position) for position, a in enumerate(arrays)]
        for position, a in enumerate(converted):
            if a.ndim == 0:
                raise ValueError(
                    f"TensorDataset array {position} is a scalar (shape ()); every array "
                    "needs a first dimension indexing the samples"
                )
        lengths = [len(a) for a in converted]
        if len(set(lengths)) != 1:
            shapes = ", ".join(f"array {i}: {a.shape}" for i, a in enumerate(converted))
            raise ValueError(
                f"TensorDataset arrays must have the same length along axis 0, got {shapes}; "
                "pass arrays that describe the same samples (e.g. images[:n], labels[:n])"
            )
        self.arrays: tuple[np.ndarray[Any, Any], ...] = tuple(converted)
        self._length = lengths[0]

    uses_global_rngs = False
    """Reads draw no random numbers (see :func:`tinytorch.data.seeding.draws_from_global_rngs`)."""

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        if isinstance(index, slice):
            return tuple(a[index] for a in self.arrays)
        if is_index_list(index):
            idx = check_indices(index, self._length, owner="TensorDataset")
            return tuple(np.take(a, idx, axis=0) for a in self.arrays)
        i = check_index(index, self._length, owner="TensorDataset")
        return tuple(a[i] for a in self.arrays)

    def __getitems__(self, indices: Sequence[int] | NDArray[np.integer]) -> StackedSamples:
        idx = check_indices(indices, self._length, owner="TensorDataset")
        return StackedSamples.of_tuples([np.take(a, idx, axis=0) for a in self.arrays])

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.shape} {a.dtype}" for a in self.arrays)
        return f"TensorDataset({shapes})"


def _as_array(a: ArrayLike, position: int) -> np.ndarray[Any, Any]:
    try:
        return np.asarray(a)
    except TypeError as e:  # e.g. a bfloat16 tensor: numpy has no such dtype
        raise TypeError(
            f"TensorDataset array {position} ({type(a).__name__} of dtype "
            f"{getattr(a, 'dtype', '?')}) cannot be held as a numpy array: {e}. Convert it "
            "first (e.g. tensor.float()), or return it from your own Dataset's __getitem__: "
            "default_collate stacks torch tensors with torch.stack"
        ) from e
