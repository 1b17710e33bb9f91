"""Index checking shared by the array-backed datasets.

Both helpers accept negative indices (Python's convention) and raise
``IndexError`` naming the offending index and the valid range.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["check_index", "check_indices"]


def check_index(index: object, length: int, *, owner: str = "dataset") -> int:
    """Return ``index`` as an int in ``[0, length)``.

    Raises:
        TypeError: ``index`` is not an integer.
        IndexError: ``index`` is outside ``[-length, length)``.
    """
    try:
        i = operator.index(index)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{owner} indices must be integers, got {type(index).__name__} {index!r}") from None
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError(
            f"index {index} is out of range for {owner} of length {length} (valid: {-length} to {length - 1})"
        )
    return i


def check_indices(
    indices: Sequence[int] | NDArray[np.integer], length: int, *, owner: str = "dataset"
) -> NDArray[np.intp]:
    """Return ``indices`` as a 1-D ``intp`` array with every entry in ``[0, length)``.

    Vectorized: one min/max over the batch, no per-index Python work.

    Raises:
        TypeError: ``indices`` are not integers.
        IndexError: any index is outside ``[-length, length)``; the message names it.
    """
    idx = np.asarray(indices)
    if idx.size == 0:
        return np.empty(0, dtype=np.intp)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{owner} indices must be integers, got an array of dtype {idx.dtype}")
    if idx.ndim != 1:
        raise ValueError(f"{owner} indices must be 1-D, got shape {idx.shape}")
    idx = idx.astype(np.intp, copy=False)
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0:
        if lo < -length:
            raise IndexError(
                f"index {lo} is out of range for {owner} of length {length} "
                f"(valid: {-length} to {length - 1})"
            )
        idx = np.where(idx < 0, idx + length, idx)
    if hi >= length:
        raise IndexError(
            f"index {hi} is out of range for {owner} of length {length} (valid: {-length} to {length - 1})"
        )
    return idx
