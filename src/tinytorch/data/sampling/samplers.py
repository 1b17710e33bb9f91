"""Index samplers with PyTorch's names and semantics, and pure, seeded order.

Every sampler here computes an epoch's indices with :meth:`ArraySampler.indices`,
a pure function of ``(seed, epoch)`` and the sampler's settings that returns an
``int64`` (or ``int32``) array. Iterating a sampler yields ``indices(self.epoch)``
as Python ints, exactly like ``torch.utils.data`` samplers; ``set_epoch(e)``
selects the epoch. A sampler has no other state: resuming an epoch needs only
``(seed, epoch, position)`` (:meth:`ArraySampler.index_chunks` starts anywhere).

Randomness comes from ``seed=`` (an int, recorded on the sampler as ``.seed``,
drawn once from OS entropy when ``None``). torch's ``generator=`` is accepted
too and stands for its seed: ``generator=torch.Generator().manual_seed(s)``
means ``seed=s`` (:func:`~tinytorch.data.seeding.resolve_seed`), so a torch
script keeps working when it switches its import. Only the generator's initial
seed is read, never its current state, so an epoch's order never depends on
how many epochs ran before or on global random state; the order differs from
torch's for the same seed (numpy's PCG64 instead of torch's ``randperm``).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinytorch.data.seeding import Stream, derive_rng, resolve_seed
from tinytorch.data.validate import check_bool, check_int

__all__ = [
    "ArraySampler",
    "IndexArray",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
]


IndexArray = NDArray[np.signedinteger[Any]]
"""An epoch's plan of dataset indices: 1-D, int32 when every index of the dataset fits (half the
memory of int64 for the plan of a large epoch; see :func:`index_dtype`), else int64."""


class Sampler(abc.ABC):
    """Base class: an iterable of dataset indices for the current epoch.

    Subclasses implement ``__iter__`` and usually ``__len__``. ``set_epoch``
    stores the epoch that the next ``__iter__`` uses.
    """

    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that the next iteration produces (non-negative int)."""
        self.epoch = check_int(epoch, "epoch")

    @abc.abstractmethod
    def __iter__(self) -> Iterator[int]:
        """Yield the indices of the current epoch."""


class ArraySampler(Sampler):
    """A sampler whose epoch is planned as one array: implement :meth:`indices`."""

    @abc.abstractmethod
    def indices(self, epoch: int) -> IndexArray:
        """The indices of ``epoch``: a 1-D integer array, a pure function of the settings.

        int64, or int32 where every index fits (half the memory an epoch's plan takes).
        """

    def index_chunks(self, epoch: int, *, start: int = 0) -> Iterator[IndexArray]:
        """The indices of ``epoch`` from position ``start`` on, in consecutive pieces.

        Together the pieces equal ``indices(epoch)[start:]``. Samplers whose order is
        naturally produced in pieces (a window at a time) override this, so planning an
        epoch needs memory for one piece, not for the whole epoch, and starting at a late
        position (resuming) does not compute the pieces before it.
        """
        start = check_int(start, "start")
        yield self.indices(epoch)[start:]

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of indices per epoch."""

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(self.epoch).tolist())


class SequentialSampler(ArraySampler):
    """``0, 1, ..., len(data_source) - 1``."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __len__(self) -> int:
        return len(self.data_source)

    def indices(self, epoch: int) -> IndexArray:
        n = len(self.data_source)
        return np.arange(n, dtype=index_dtype(n))


class RandomSampler(ArraySampler):
    """A random order of ``data_source``'s indices, new each epoch.

    Args:
        data_source: anything with ``len()``; its length is read each epoch.
        replacement: draw ``num_samples`` indices independently (with repeats)
            instead of permuting.
        num_samples: indices per epoch, default ``len(data_source)``. Without
            replacement and larger than the dataset, whole permutations are
            concatenated and the last one truncated (PyTorch's behaviour).
        generator: a ``torch.Generator``, standing for ``seed=generator.initial_seed()``
            (see module docs); excludes ``seed``.
        seed: the order of epoch ``e`` is a pure function of ``(seed, e)``.
    """

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: Any = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.data_source = data_source
        self.replacement = check_bool(replacement, "replacement")
        self._num_samples = None if num_samples is None else check_int(num_samples, "num_samples", minimum=1)
        self.seed = resolve_seed(seed, generator, owner=type(self).__name__)

    @property
    def num_samples(self) -> int:
        """Indices per epoch."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __len__(self) -> int:
        return self.num_samples

    def indices(self, epoch: int) -> IndexArray:
        n, k = len(self.data_source), self.num_samples
        rng = derive_rng(self.seed, Stream.SHUFFLE, epoch)
        if n == 0:
            if k and self._num_samples is not None:
                raise ValueError("RandomSampler cannot draw num_samples from an empty dataset")
            return np.empty(0, dtype=np.int64)
        if self.replacement:
            return rng.integers(0, n, size=k, dtype=np.int64)
        whole, rest = divmod(k, n)
        parts = [permutation(rng, n) for _ in range(whole)]
        if rest:
            parts.append(permutation(rng, n)[:rest])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class SubsetRandomSampler(ArraySampler):
    """The given ``indices`` in a random order, new each epoch (seeded).

    Args:
        indices: integer indices (any shape; flattened).
        generator: a ``torch.Generator`` standing for its seed (see module docs).
        seed: the order of epoch ``e`` is a pure function of ``(seed, e)``.
    """

    def __init__(self, indices: ArrayLike, generator: Any = None, *, seed: int | None = None) -> None:
        array = np.asarray(indices)
        if array.size and array.dtype.kind not in "iu":
            raise TypeError(f"SubsetRandomSampler indices must be integers, got dtype {array.dtype}")
        if array.size and array.dtype.kind == "u" and int(array.max()) > np.iinfo(np.int64).max:
            raise IndexError(f"SubsetRandomSampler index {int(array.max())} is beyond any dataset's length")
        self.subset = array.astype(np.int64).reshape(-1)
        self.seed = resolve_seed(seed, generator, owner=type(self).__name__)

    def __len__(self) -> int:
        return len(self.subset)

    def indices(self, epoch: int) -> IndexArray:
        rng = derive_rng(self.seed, Stream.SHUFFLE, epoch)
        return self.subset[rng.permutation(len(self.subset))]


class WeightedRandomSampler(ArraySampler):
    """``num_samples`` indices drawn with probability proportional to ``weights``.

    Args:
        weights: one non-negative finite weight per index (need not sum to 1).
        num_samples: indices per epoch.
        replacement: with replacement (default, as in PyTorch) or without, in
            which case ``num_samples`` may not exceed the number of non-zero weights.
        generator: a ``torch.Generator`` standing for its seed (see module docs).
        seed: the draw of epoch ``e`` is a pure function of ``(seed, e)``.
    """

    def __init__(
        self,
        weights: ArrayLike,
        num_samples: int,
        replacement: bool = True,
        generator: Any = None,
        *,
        seed: int | None = None,
    ) -> None:
        seed = resolve_seed(seed, generator, owner=type(self).__name__)
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size == 0:
            raise ValueError("WeightedRandomSampler needs at least one weight")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("WeightedRandomSampler weights must be finite and non-negative")
        if not np.any(w > 0):
            raise ValueError("WeightedRandomSampler weights must not all be zero")
        replacement = check_bool(replacement, "replacement")
        self.num_samples = check_int(num_samples, "num_samples", minimum=1)
        if not replacement and self.num_samples > int(np.count_nonzero(w)):
            raise ValueError(
                f"WeightedRandomSampler without replacement cannot draw {self.num_samples} "
                f"samples from {int(np.count_nonzero(w))} non-zero weights; lower num_samples "
                "or use replacement=True"
            )
        self.weights = w
        self.replacement = replacement
        self.seed = seed

    def __len__(self) -> int:
        return self.num_samples

    def indices(self, epoch: int) -> IndexArray:
        rng = derive_rng(self.seed, Stream.SHUFFLE, epoch)
        w = self.weights
        with np.errstate(over="ignore"):
            total = w.sum()
        if not np.isfinite(total):  # finite weights whose sum overflows (1e308 + 1e308)
            w = w / w.max()
            total = w.sum()
        p = w / total
        drawn = rng.choice(len(p), size=self.num_samples, replace=self.replacement, p=p)
        return np.asarray(drawn, dtype=np.int64)


def index_dtype(n: int) -> type[np.signedinteger[Any]]:
    """The narrowest of int32 / int64 that holds every index below ``n``."""
    return np.int32 if n < 2**31 else np.int64


def permutation(rng: np.random.Generator, n: int) -> IndexArray:
    """``rng.permutation(n)`` (the very same order), stored as int32 when ``n`` fits."""
    out = np.arange(n, dtype=index_dtype(n))
    rng.shuffle(out)
    return out
