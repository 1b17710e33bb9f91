"""``StackDataset``: several map-style datasets of one length, read side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.base import Dataset, read_batch
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.seeding import draws_from_global_rngs

__all__ = ["StackDataset"]


class StackDataset(Dataset[Any]):
    """Sample ``i`` is ``(a[i], b[i], ...)`` or ``{"x": a[i], "y": b[i], ...}`` (PyTorch's ``StackDataset``).

    ``StackDataset(images, labels)`` gives tuple samples, ``StackDataset(image=images,
    label=labels)`` dict samples. An index is passed to every part as it is (a part that
    takes slices or lists gives a slice of the stack).

    ``__getitems__`` reads a batch from each part with one call (the part's own
    ``__getitems__`` where it has one); when every part returns
    :class:`StackedSamples`, so does the stack, and ``default_collate`` has nothing left to
    do: a ``StackDataset`` of ``TensorDataset``\\ s stays vectorized.

    Args:
        *args: map-style datasets, for tuple samples; or
        **kwargs: map-style datasets by name, for dict samples.

    Raises:
        ValueError: no datasets, both forms at once, or datasets of different lengths
            (the message lists them).
    """

    def __init__(self, *args: Dataset[Any], **kwargs: Dataset[Any]) -> None:
        if args and kwargs:
            raise ValueError(
                "StackDataset takes datasets either positionally (tuple samples) or by keyword "
                f"(dict samples), not both; got {len(args)} positional and keywords {sorted(kwargs)}"
            )
        if not args and not kwargs:
            raise ValueError("StackDataset needs at least one dataset, e.g. StackDataset(images, labels)")
        self.datasets: tuple[Dataset[Any], ...] | dict[str, Dataset[Any]] = args if args else dict(kwargs)
        named = list(enumerate(args)) if args else list(kwargs.items())
        lengths = {name: len(d) for name, d in named}
        if len(set(lengths.values())) != 1:
            listed = ", ".join(f"dataset {name!r}: {n}" for name, n in lengths.items())
            raise ValueError(
                f"StackDataset's datasets must have the same length, got {listed}; "
                "stack datasets that describe the same samples"
            )
        self._length = next(iter(lengths.values()))

    def _parts(self) -> list[tuple[Any, Dataset[Any]]]:
        if isinstance(self.datasets, dict):
            return list(self.datasets.items())
        return list(enumerate(self.datasets))

    @property
    def uses_global_rngs(self) -> bool:
        return any(draws_from_global_rngs(d) for _, d in self._parts())

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __getitems__(self, indices: Sequence[int] | NDArray[np.intp]) -> Any:
        parts = {name: read_batch(d, indices) for name, d in self._parts()}
        n = len(indices)
        for name, batch in parts.items():
            if len(batch) != n:
                raise ValueError(
                    f"StackDataset: dataset {name!r} returned {len(batch)} samples from "
                    f"__getitems__ for {n} indices; __getitems__ must return one sample per index"
                )
        if all(isinstance(b, StackedSamples) for b in parts.values()):
            if isinstance(self.datasets, dict):
                return StackedSamples.of_dicts(parts)
            return StackedSamples.of_tuples(list(parts.values()))
        if isinstance(self.datasets, dict):
            return [dict(zip(parts, sample, strict=True)) for sample in zip(*parts.values(), strict=True)]
        return list(zip(*parts.values(), strict=True))

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{name}={type(d).__name__}" if isinstance(name, str) else type(d).__name__
            for name, d in self._parts()
        )
        return f"StackDataset({parts}; {self._length} samples)"
