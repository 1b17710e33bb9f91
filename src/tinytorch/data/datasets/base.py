"""The dataset protocols: map-style :class:`Dataset` and :class:`IterableDataset`.

A map-style dataset answers ``len(ds)`` and ``ds[i]``. It may also answer
``ds.__getitems__(indices)`` (as in PyTorch >= 2.0), reading a whole batch at
once; :func:`read_batch` is the one place that chooses between the two.
"""

from __future__ import annotations

import abc
import time
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.seeding import get_batch_context

if TYPE_CHECKING:
    from tinytorch.data.datasets.chain import ChainDataset
    from tinytorch.data.datasets.combine import ConcatDataset

__all__ = [
    "Dataset",
    "IterableDataset",
    "NoLengthError",
    "has_len",
    "map_samples",
    "read_batch",
    "timed_sample_transform",
]

T_co = TypeVar("T_co", covariant=True)


class NoLengthError(TypeError):
    """What the base classes' ``__len__`` raises: the dataset has no length (a ``TypeError``, as
    ``len()`` of an object without one; a subclass's ``__len__`` may return ``super().__len__()``
    to say so, torch's convention). Lets the loader tell "no length" from a ``__len__`` that failed."""


class Dataset(Generic[T_co]):
    """A map-style dataset: ``len(ds)`` samples, sample ``i`` is ``ds[i]``.

    Subclasses implement ``__getitem__`` and ``__len__``. As in PyTorch, a subclass missing
    them can still be created: reading an item raises ``NotImplementedError``, and ``len()``
    raises ``TypeError`` (the loader needs the length of a map-style dataset). Subclasses that
    can read many samples at once should also implement ``__getitems__(indices)`` returning
    either a list of samples or a :class:`~tinytorch.data.datasets.stacked.StackedSamples`.

    ``ds + other`` is a :class:`~tinytorch.data.datasets.combine.ConcatDataset`.

    Contract: ``ds[i]`` is a pure function of ``i`` (and of the current
    :func:`~tinytorch.data.seeding.get_batch_context` for random transforms), so
    the loader's determinism guarantee holds.
    """

    def __getitem__(self, index: int) -> T_co:
        """Return sample ``index`` (0 <= index < len(self); negative indices may be allowed)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not define __getitem__; subclasses of Dataset must "
            "implement __getitem__(self, index) returning sample `index`"
        )

    def __len__(self) -> int:
        """Return the number of samples."""
        raise NoLengthError(
            f"object of type {type(self).__name__!r} has no len(): a map-style Dataset must "
            "define __len__ returning its number of samples"
        )

    def __add__(self, other: Dataset[Any]) -> ConcatDataset[Any]:
        from tinytorch.data.datasets.combine import ConcatDataset

        return ConcatDataset([self, other])


# typing.Iterable, not collections.abc's: it puts Iterable before Generic in the MRO, as torch's
# IterableDataset does, so a class can subclass both (a dataset usable by both loaders).
class IterableDataset(Dataset[T_co], typing.Iterable[T_co]):
    """A dataset read as a stream: subclasses implement ``__iter__`` (as in PyTorch, a
    subclass without it cannot be instantiated: ``TypeError``).

    ``len()`` is optional: define ``__len__`` when the number of samples is
    known exactly, and the loader's ``len()`` will use it. Indexing is refused.
    ``stream + other`` chains the two streams (a
    :class:`~tinytorch.data.datasets.chain.ChainDataset`).

    When the loader starts an epoch it calls ``set_epoch(epoch)`` on the
    dataset if the dataset defines it, so a stream can reshuffle per epoch as a
    pure function of ``(seed, epoch)``.
    """

    @abc.abstractmethod
    def __iter__(self) -> Iterator[T_co]:
        """Yield the samples of one pass."""

    def __getitem__(self, index: int) -> T_co:
        raise TypeError(
            f"{type(self).__name__} is an IterableDataset and cannot be indexed; "
            "iterate over it, or use a map-style Dataset for random access"
        )

    def __len__(self) -> int:
        raise NoLengthError(
            f"{type(self).__name__} is an IterableDataset without a length; "
            "define __len__ on it if the number of samples is known"
        )

    def __add__(self, other: Dataset[Any]) -> ChainDataset[Any]:  # type: ignore[override]
        from tinytorch.data.datasets.chain import ChainDataset

        return ChainDataset([self, other])


def has_len(dataset: object) -> bool:
    """Whether ``len(dataset)`` works (iterable datasets may not define it)."""
    try:
        len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def read_batch(dataset: Dataset[Any], indices: NDArray[np.intp] | Sequence[int]) -> Any:
    """Read the samples ``indices`` of a map-style dataset.

    Uses the dataset's ``__getitems__`` when it has one (one call for the whole
    batch), else one ``dataset[i]`` per index.

    Returns:
        Whatever ``__getitems__`` returns (a list of samples or
        ``StackedSamples``), or a list of samples.
    """
    getitems = getattr(dataset, "__getitems__", None)
    if getitems is not None:
        return getitems(indices)
    as_list = indices.tolist() if isinstance(indices, np.ndarray) else list(indices)
    return map_samples(dataset.__getitem__, as_list)


def map_samples(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(x) for x in items]``, with each call inside its sample's batch context.

    While the loader fetches a batch, the call for the item at position ``p``
    sees ``get_batch_context().position == p``, so a random per-sample
    transform draws from the stream of ``(seed, epoch, batch_index, p)``.
    Outside a loader this is a plain list comprehension.
    """
    context = get_batch_context()
    if context is None:
        return [fn(x) for x in items]
    if context.position is not None:  # already inside a sample (a dataset wrapping another)
        return [fn(x) for x in items]
    out = []
    try:
        for position, x in enumerate(items):
            context.position = position
            out.append(fn(x))
    finally:
        context.position = None
    return out


def timed_sample_transform(transform: Callable[[Any], Any], value: Any) -> Any:
    """``transform(value)``, its time added to the current batch's per-sample transform time."""
    context = get_batch_context()
    if context is None:
        return transform(value)
    start = time.perf_counter()
    try:
        return transform(value)
    finally:
        context.sample_transform_seconds += time.perf_counter() - start
