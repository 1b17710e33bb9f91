"""``ChainDataset``: several iterable datasets read one after another (``a + b`` of streams)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tinytorch.data.datasets.base import Dataset, IterableDataset
from tinytorch.data.seeding import draws_from_global_rngs

__all__ = ["ChainDataset"]

T = TypeVar("T")


class ChainDataset(IterableDataset[T]):
    """The samples of each iterable dataset in ``datasets``, in turn (PyTorch's ``ChainDataset``).

    ``stream_a + stream_b`` builds one. The chain is built on the fly: each pass iterates the
    parts again, so it is as deterministic as they are.

    Args:
        datasets: iterable datasets (kept as a tuple: a generator of datasets is read once,
            here, so every epoch chains the same parts).

    ``len(chain)`` is the sum of the parts' lengths; ``TypeError`` when one has none.
    ``set_epoch(epoch)`` (called by the loader at each epoch) is passed on to every part
    that defines it.

    Raises:
        TypeError: a part is not an :class:`IterableDataset` (PyTorch raises an
            ``AssertionError`` when the chain is iterated; this names the part at once).
    """

    def __init__(self, datasets: Iterable[Dataset[T]]) -> None:
        parts = tuple(datasets)
        for position, d in enumerate(parts):
            if not isinstance(d, IterableDataset):
                raise TypeError(
                    f"ChainDataset chains IterableDatasets; dataset {position} ({type(d).__name__}) "
                    "is map-style. Combine map-style datasets with ConcatDataset (or `a + b`)"
                )
        self.datasets: tuple[IterableDataset[T], ...] = parts  # type: ignore[assignment]

    @property
    def uses_global_rngs(self) -> bool:
        return any(draws_from_global_rngs(d) for d in self.datasets)

    def __iter__(self) -> Iterator[T]:
        for d in self.datasets:
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def set_epoch(self, epoch: int) -> None:
        """Pass the loader's epoch on to every part that takes one."""
        for d in self.datasets:
            set_epoch = getattr(d, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(epoch)

    def __repr__(self) -> str:
        return f"ChainDataset({', '.join(type(d).__name__ for d in self.datasets)})"
