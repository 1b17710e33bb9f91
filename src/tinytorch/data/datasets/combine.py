"""Datasets built from other datasets: ``Subset``, ``ConcatDataset``, ``random_split``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.base import Dataset, IterableDataset, read_batch
from tinytorch.data.datasets.indexing import check_index, check_indices, is_index_list
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.seeding import Stream, derive_rng, draws_from_global_rngs, resolve_seed
from tinytorch.data.validate import check_float, check_int

__all__ = ["ConcatDataset", "Subset", "random_split"]

T = TypeVar("T")


class Subset(Dataset[T]):
    """The samples of ``dataset`` at ``indices``, in that order.

    Args:
        dataset: a map-style dataset.
        indices: positions into ``dataset`` (negative allowed); checked here (PyTorch
            checks only when an item is read).

    ``subset[i]`` is ``dataset[indices[i]]``; as in PyTorch, a slice or a list of
    positions reads ``dataset[[indices[j] for j in ...]]`` (one call with a list, so a
    ``Subset`` of a ``TensorDataset`` or of another ``Subset`` can be sliced).
    ``__getitems__`` maps a batch of positions through ``indices`` with one array
    operation and reads the parent with one ``read_batch`` call.
    """

    def __init__(self, dataset: Dataset[T], indices: Sequence[int] | NDArray[np.integer]) -> None:
        self.dataset = dataset
        self.indices: NDArray[np.intp] = check_indices(indices, len(dataset), owner="Subset's parent dataset")

    @property
    def uses_global_rngs(self) -> bool:
        return draws_from_global_rngs(self.dataset)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.dataset[self.indices[index].tolist()]
        if is_index_list(index):
            selected = self.indices[check_indices(index, len(self.indices), owner="Subset")]
            return self.dataset[selected.tolist()]
        return self.dataset[int(self.indices[check_index(index, len(self.indices), owner="Subset")])]

    def __getitems__(self, indices: Sequence[int] | NDArray[np.integer]) -> Any:
        idx = check_indices(indices, len(self.indices), owner="Subset")
        return read_batch(self.dataset, self.indices[idx])


class ConcatDataset(Dataset[T]):
    """The samples of several map-style datasets, one after another.

    ``__getitems__`` groups a batch's indices by source dataset, reads each
    group with one call, and, when every group comes back stacked with the same
    layout, reassembles the batch with one concatenate and one take per column.
    """

    def __init__(self, datasets: Iterable[Dataset[T]]) -> None:
        self.datasets: list[Dataset[T]] = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset needs at least one dataset")
        for position, d in enumerate(self.datasets):
            if isinstance(d, IterableDataset):
                raise TypeError(
                    f"ConcatDataset takes map-style datasets; dataset {position} "
                    f"({type(d).__name__}) is an IterableDataset. Chain iterables with "
                    "itertools.chain inside an IterableDataset instead"
                )
        self.cumulative_sizes: NDArray[np.intp] = np.cumsum([len(d) for d in self.datasets], dtype=np.intp)

    @property
    def uses_global_rngs(self) -> bool:
        return any(draws_from_global_rngs(d) for d in self.datasets)

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def _locate(self, idx: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        which = np.searchsorted(self.cumulative_sizes, idx, side="right")
        starts = np.concatenate(([0], self.cumulative_sizes[:-1]))
        return which, idx - starts[which]

    def __getitem__(self, index: int) -> T:
        i = check_index(index, len(self), owner="ConcatDataset")
        which, local = self._locate(np.array([i], dtype=np.intp))
        return self.datasets[int(which[0])][int(local[0])]

    def __getitems__(self, indices: Sequence[int] | NDArray[np.integer]) -> Any:
        idx = check_indices(indices, len(self), owner="ConcatDataset")
        if idx.size == 0:  # an empty batch, in the first part's layout (as Subset gives one)
            return read_batch(self.datasets[0], idx)
        which, local = self._locate(idx)
        groups = np.unique(which)
        parts = [
            (np.flatnonzero(which == g), read_batch(self.datasets[int(g)], local[which == g])) for g in groups
        ]
        if len(parts) == 1:
            return parts[0][1]
        order = np.concatenate([positions for positions, _ in parts])
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        stacked = [p for _, p in parts]
        if all(isinstance(p, StackedSamples) for p in stacked):
            merged = _concat_stacked(stacked)
            if merged is not None:
                return merged.map_columns(lambda c: _take(c, inverse))
        samples = [s for p in stacked for s in p]
        return [samples[int(j)] for j in inverse]


def _take(column: Any, positions: NDArray[np.intp]) -> Any:
    if isinstance(column, np.ndarray):
        return np.take(column, positions, axis=0)
    if isinstance(column, StackedSamples):
        return column.map_columns(lambda c: _take(c, positions))
    return [column[int(j)] for j in positions]


def _concat_stacked(parts: list[StackedSamples]) -> StackedSamples | None:
    """Concatenate stacked batches of the same layout; ``None`` if layouts differ."""
    first = parts[0]
    if any(p.kind != first.kind for p in parts):
        return None

    def cat(columns: list[Any]) -> Any:
        if all(isinstance(c, StackedSamples) for c in columns):
            nested = _concat_stacked(columns)
            if nested is None:
                raise _Mismatch
            return nested
        if any(isinstance(c, StackedSamples) for c in columns):
            raise _Mismatch
        if all(isinstance(c, np.ndarray) for c in columns):
            shapes = {c.shape[1:] for c in columns}
            dtypes = {c.dtype for c in columns}
            if len(shapes) != 1 or len(dtypes) != 1:
                raise _Mismatch
            return np.concatenate(columns)
        return [x for c in columns for x in c]

    try:
        if first.kind == "tuple":
            widths = {len(p.columns) for p in parts}
            if len(widths) != 1:
                return None
            return StackedSamples.of_tuples(
                [cat([p.columns[j] for p in parts]) for j in range(len(first.columns))]
            )
        if first.kind == "dict":
            keys = list(first.columns)
            if any(list(p.columns) != keys for p in parts):
                return None
            return StackedSamples.of_dicts({k: cat([p.columns[k] for p in parts]) for k in keys})
        return StackedSamples.of_arrays(cat([p.columns for p in parts]))
    except _Mismatch:
        return None


class _Mismatch(Exception):
    pass


def random_split(
    dataset: Dataset[T],
    lengths: Sequence[int | float],
    seed: int | None = None,
    generator: Any = None,
) -> list[Subset[T]]:
    """Split ``dataset`` into non-overlapping random subsets.

    Args:
        dataset: a map-style dataset of length ``n``.
        lengths: subset sizes summing to ``n``, or fractions summing to 1 (PyTorch's rule:
            sizes are ``floor(f * n)`` and the remainder is dealt one sample at a time to
            the subsets in order; a split of size 0 is warned about). Python or numpy
            numbers; nothing is truncated (``2.5`` samples is an error, not 2).
        seed: the permutation is a pure function of ``(seed, n)``; ``None`` (and no
            ``generator``) means 0, so a split is the same in every run.
        generator: a ``torch.Generator``, as in PyTorch: it means
            ``seed=generator.initial_seed()`` (its current state is not used). Passed as the
            third positional argument, as torch scripts do, it is taken as the generator.

    Returns:
        One :class:`Subset` per length. The same ``seed`` gives the same split here in every
        run, but not the split torch's ``randperm`` gives for that seed.

    Raises:
        ValueError: the lengths do not sum to ``n`` (nor to 1), or a length is negative, or
            a size is not a whole number; or both ``seed`` and ``generator``.
        TypeError: a length is not a number; ``generator`` is not a ``torch.Generator``.
    """
    if generator is None and seed is not None and type(seed).__module__.split(".")[0] == "torch":
        seed, generator = None, seed  # random_split(ds, lengths, torch.Generator()...) as in torch
    resolved = (
        0 if seed is None and generator is None else resolve_seed(seed, generator, owner="random_split")
    )
    n = len(dataset)
    sizes = _split_sizes(lengths, n)
    order = derive_rng(resolved, Stream.SPLIT).permutation(n)
    bounds = np.cumsum([0, *sizes])
    return [Subset(dataset, order[bounds[k] : bounds[k + 1]]) for k in range(len(sizes))]


def _split_sizes(lengths: Sequence[int | float], n: int) -> list[int]:
    lengths = list(lengths)  # read once (a generator, a numpy array)
    values: list[int | float] = []
    for position, v in enumerate(lengths):
        name = f"random_split lengths[{position}]"
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            values.append(
                check_int(
                    v, name, hint="lengths are sizes summing to the dataset length, or fractions summing to 1"
                )
            )
        else:
            values.append(
                check_float(
                    v,
                    name,
                    minimum=0,
                    hint="lengths are sizes summing to the dataset length, or fractions summing to 1",
                )
            )
    if not values:
        raise ValueError("random_split needs at least one length, e.g. [0.8, 0.2] or [800, 200]")
    total = sum(values)
    # torch's test on the numbers as given: float32 fractions (0.4, 0.6) sum to exactly 1 in
    # float32, but to 1.00000003 once widened to Python floats.
    native = sum(lengths)
    if math.isclose(native, 1.0) and native <= 1:  # fractions (torch's test, whatever the number type)
        sizes = [math.floor(n * f) for f in values]
        for k in range(n - sum(sizes)):
            sizes[k % len(sizes)] += 1
        for position, size in enumerate(sizes):
            if size == 0:
                warnings.warn(
                    f"random_split: split {position} of {values} is empty ({n} samples); "
                    "this might give an empty dataset",
                    stacklevel=3,
                )
        return sizes
    if any(isinstance(v, float) and not v.is_integer() for v in values):
        raise ValueError(
            f"random_split lengths must be whole sizes summing to the dataset length {n} or "
            f"fractions summing to 1, got {list(lengths)} (sum {total}); pass fractions like "
            "[0.8, 0.2] or integer sizes"
        )
    sizes = [int(v) for v in values]  # whole numbers: nothing is truncated
    if sum(sizes) != n:
        raise ValueError(
            f"random_split lengths must sum to the dataset length {n}, got {sizes} "
            f"(sum {sum(sizes)}); adjust them, or pass fractions that sum to 1"
        )
    return sizes
