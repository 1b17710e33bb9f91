"""A batch of samples that a dataset read at once, already stacked field by field.

``__getitems__`` of array-backed datasets returns :class:`StackedSamples`: to
``default_collate`` it is the finished batch (no per-sample work at all); to any
other ``collate_fn`` it is a plain sequence of samples, as PyTorch's
``__getitems__`` contract promises, so custom collate functions keep working.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

__all__ = ["StackedSamples"]

_Kind = Literal["tuple", "dict", "array"]


class StackedSamples(Sequence[Any]):
    """``n`` samples stored as stacked columns (arrays with a leading axis of ``n``).

    Build with :meth:`of_tuples`, :meth:`of_dicts` or :meth:`of_arrays`.
    ``collated()`` is exactly what ``default_collate`` would return for
    ``list(self)``: a list of columns for tuple samples (PyTorch's rule), a dict
    for dict samples, an array for array samples. A column may itself be a
    ``StackedSamples`` (samples nesting another dataset's samples, as
    :class:`~tinytorch.data.datasets.stack.StackDataset` makes); it is collated in turn.
    """

    __slots__ = ("_columns", "_kind", "_length")

    def __init__(self, columns: Any, kind: _Kind, length: int) -> None:
        self._columns = columns
        self._kind = kind
        self._length = length

    @classmethod
    def of_tuples(cls, columns: Sequence[Any]) -> StackedSamples:
        """Samples ``(columns[0][i], columns[1][i], ...)``; all columns have equal length."""
        return cls(list(columns), "tuple", _common_length(columns))

    @classmethod
    def of_dicts(cls, columns: Mapping[str, Any]) -> StackedSamples:
        """Samples ``{key: columns[key][i]}``; all columns have equal length."""
        return cls(dict(columns), "dict", _common_length(list(columns.values())))

    @classmethod
    def of_arrays(cls, array: np.ndarray[Any, Any]) -> StackedSamples:
        """Samples ``array[i]``."""
        return cls(array, "array", len(array))

    @property
    def kind(self) -> _Kind:
        """How one sample is shaped: ``"tuple"``, ``"dict"`` or ``"array"``."""
        return self._kind

    @property
    def columns(self) -> Any:
        """The stacked columns (list, dict or array, by :attr:`kind`)."""
        return self._columns

    def collated(self) -> Any:
        """The batch as ``default_collate`` would build it from the samples."""
        if self._kind == "tuple":
            return [_collated(c) for c in self._columns]
        if self._kind == "dict":
            return {k: _collated(c) for k, c in self._columns.items()}
        return self._columns

    def map_columns(self, fn: Any) -> StackedSamples:
        """A new ``StackedSamples`` with ``fn`` applied to every column."""
        if self._kind == "tuple":
            return StackedSamples([fn(c) for c in self._columns], "tuple", self._length)
        if self._kind == "dict":
            return StackedSamples({k: fn(c) for k, c in self._columns.items()}, "dict", self._length)
        return StackedSamples(fn(self._columns), "array", self._length)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._length))]
        if self._kind == "tuple":
            return tuple(c[i] for c in self._columns)
        if self._kind == "dict":
            return {k: c[i] for k, c in self._columns.items()}
        return self._columns[i]

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(self._length))

    def __repr__(self) -> str:
        return f"StackedSamples(kind={self._kind!r}, length={self._length})"


def _collated(column: Any) -> Any:
    return column.collated() if isinstance(column, StackedSamples) else column


def _common_length(columns: Sequence[Any]) -> int:
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise ValueError(f"stacked columns must all have the same length, got lengths {sorted(lengths)}")
    return lengths.pop()
