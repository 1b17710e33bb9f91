"""Index checking shared by the array-backed datasets.

The helpers accept negative indices (Python's convention) and raise
``IndexError`` naming the offending index and the valid range. The errors are
also the classes torch raises for the same misuse, so code written for torch
catches them: an index out of range is an ``IndexError`` and a ``ValueError``
(torch's ``ConcatDataset`` raises ``ValueError`` for too negative an index), an
index of the wrong type a ``TypeError`` and an ``IndexError`` (torch's tensor
indexing raises ``IndexError`` there, a list ``TypeError``).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["IndexOutOfRangeError", "IndexTypeError", "check_index", "check_indices", "is_index_list"]


class IndexOutOfRangeError(IndexError, ValueError):
    """An index outside ``[-length, length)``."""


class IndexTypeError(TypeError, IndexError):
    """An index that is not an integer (or, for batch reads, integers)."""


def is_index_list(index: object) -> bool:
    """Whether ``index`` selects several samples: a slice, a list or a 1-D array (torch's
    datasets pass these on to tensor indexing)."""
    if isinstance(index, (slice, list)):
        return True
    return hasattr(index, "__array__") and getattr(index, "ndim", 0) >= 1


def check_index(index: object, length: int, *, owner: str = "dataset") -> int:
    """Return ``index`` as an int in ``[0, length)``.

    Raises:
        TypeError: ``index`` is not an integer.
        IndexError: ``index`` is outside ``[-length, length)``.
    """
    try:
        i = operator.index(index)  # type: ignore[arg-type]
    except TypeError:
        raise IndexTypeError(
            f"{owner} indices must be integers, got {type(index).__name__} {index!r}"
        ) from None
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexOutOfRangeError(
            f"index {index} is out of range for {owner} of length {length} (valid: {-length} to {length - 1})"
        )
    return i


def check_indices(
    indices: Sequence[int] | NDArray[np.integer], length: int, *, owner: str = "dataset"
) -> NDArray[np.intp]:
    """Return ``indices`` as a 1-D ``intp`` array with every entry in ``[0, length)``.

    Vectorized: one min/max over the batch, no per-index Python work. A boolean mask of
    ``length`` entries selects where it is true (numpy's and torch's rule).

    Raises:
        TypeError: ``indices`` are not integers.
        ValueError: ``indices`` are not 1-D.
        IndexError: any index is outside ``[-length, length)`` (the message names it), or a
            mask has another length.
    """
    idx = np.asarray(indices)
    if idx.dtype == np.bool_ and idx.ndim == 1 and idx.size:
        if len(idx) != length:
            raise IndexOutOfRangeError(
                f"{owner} got a boolean mask of {len(idx)} entries; it needs {length}, one per sample"
            )
        return np.flatnonzero(idx)
    if idx.size == 0:
        return np.empty(0, dtype=np.intp)
    if idx.dtype.kind not in "iu":
        raise IndexTypeError(f"{owner} indices must be integers, got an array of dtype {idx.dtype}")
    if idx.ndim != 1:
        raise ValueError(f"{owner} indices must be 1-D, got shape {idx.shape}")
    if idx.dtype.kind == "u" and int(idx.max()) >= length:  # before the cast would wrap it
        raise IndexError(
            f"index {int(idx.max())} is out of range for {owner} of length {length} "
            f"(valid: {-length} to {length - 1})"
        )
    idx = idx.astype(np.intp, copy=False)
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0:
        if lo < -length:
            raise IndexOutOfRangeError(
                f"index {lo} is out of range for {owner} of length {length} "
                f"(valid: {-length} to {length - 1})"
            )
        idx = np.where(idx < 0, idx + length, idx)
    if hi >= length:
        raise IndexOutOfRangeError(
            f"index {hi} is out of range for {owner} of length {length} (valid: {-length} to {length - 1})"
        )
    return idx
