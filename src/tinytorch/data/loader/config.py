"""A loader's settings, checked and resolved once into immutable values.

:func:`resolve_batching` turns ``(dataset, batch_size, shuffle, sampler, batch_sampler,
drop_last, collate_fn, seed, batch_transform)`` into a :class:`Batching`: everything an epoch
needs to plan and make its batches. :func:`resolve_workers` does the same for where batches
are made (:class:`WorkerOptions`). Both are pure (no I/O, no processes) and are the only place
where the rules for combining the arguments live; the constructor conflicts are torch's
(``torch.utils.data.DataLoader.__init__``), so the same combinations raise the same types.

``DataLoader`` keeps one of each. After construction the settings that decide *which* samples
form a batch are fixed, as in torch (``dataset``, ``batch_size``, ``shuffle``, ``sampler``,
``batch_sampler``, ``drop_last``, ``seed``, ``persistent_workers``); the others can be assigned
and are checked by the same functions again, taking effect from the next ``iter(loader)`` for
every worker type (persistent workers are restarted when what they run changed).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from tinytorch.data.collate.default import default_collate, default_convert
from tinytorch.data.datasets.base import IterableDataset
from tinytorch.data.fetch.fetcher import BatchTransform
from tinytorch.data.sampling.batching import BatchSampler
from tinytorch.data.sampling.samplers import RandomSampler, SequentialSampler
from tinytorch.data.seeding import draws_from_global_rngs, resolve_seed
from tinytorch.data.validate import check_bool, check_float, check_int

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "FIXED_AFTER_INIT",
    "Batching",
    "WorkerOptions",
    "default_prefetch_factor",
    "is_iterable_dataset",
    "resolve_batching",
    "resolve_workers",
]


class _Default:
    def __repr__(self) -> str:
        return "32"


DEFAULT_BATCH_SIZE: Final[Any] = _Default()
"""``batch_size`` not given: 32 (the seed's default), or none when a batch_sampler is given."""

FIXED_AFTER_INIT: Final = frozenset(
    {
        "dataset",
        "batch_size",
        "shuffle",
        "sampler",
        "batch_sampler",
        "drop_last",
        "seed",
        "persistent_workers",
    }
)
"""Attributes that cannot be assigned after construction (torch's list, plus ``shuffle`` and
``seed``, which decide the order): they decide which samples form which batch."""


@dataclass(frozen=True)
class Batching:
    """What an epoch needs to plan and make its batches.

    Attributes:
        dataset: the dataset.
        iterable: whether it is an ``IterableDataset`` (a stream, no sampler).
        batch_size: samples per batch, or ``None`` when batching is off.
        drop_last: drop the last, incomplete batch.
        shuffle: whether the loader built a ``RandomSampler``.
        sampler: the order of indices (map-style datasets), the user's or the loader's.
        batch_sampler: yields index batches (map-style with batching), the user's or a
            :class:`BatchSampler` over ``sampler``.
        collate_fn: samples -> batch.
        seed: every random choice derives from it.
        batch_transform: ``f(batch, rng)`` after collation, or ``None``.
        batched: batches are made from index batches (``batch_sampler``); otherwise each task
            is one index and the sample goes through ``collate_fn`` alone.
        seed_given: the seed came from ``seed=`` or ``generator=`` (else it was drawn: a saved
            state may replace it, see ``DataLoader.load_state_dict``).
        library_sampler: the loader built the sampler itself over this dataset: its indices
            are in range by construction, and its epoch is the loader's.
    """

    dataset: Any
    iterable: bool
    batch_size: int | None
    drop_last: bool
    shuffle: bool
    sampler: Iterable[int] | None
    batch_sampler: Iterable[Any] | None
    collate_fn: Callable[[Any], Any]
    seed: int
    batch_transform: BatchTransform | None
    batched: bool
    library_sampler: bool
    seed_given: bool = True

    @property
    def index_source(self) -> Iterable[Any] | None:
        """What an epoch's plan is drawn from: the batch sampler, or the sampler when unbatched."""
        return self.batch_sampler if self.batched else self.sampler

    @property
    def draws_from_global_rngs(self) -> bool:
        """Whether making a batch may draw from numpy's, Python's or torch's global generators:
        the loader then seeds them per batch (see :func:`~tinytorch.data.seeding.draws_from_global_rngs`)."""
        return (
            draws_from_global_rngs(self.dataset)
            or not self.library_collate
            or draws_from_global_rngs(self.batch_transform)
        )

    @property
    def library_collate(self) -> bool:
        """Whether ``collate_fn`` is this library's (it accepts ``StackedSamples`` as they are)."""
        return self.collate_fn is default_collate or self.collate_fn is default_convert

    def with_setting(self, name: str, value: Any) -> Batching:
        """A copy with ``collate_fn`` or ``batch_transform`` replaced (checked)."""
        if name == "collate_fn":
            check_callable(value, name)
            batches = self.batched or (self.iterable and self.batch_size is not None)
            default = default_collate if batches else default_convert
            return dataclasses.replace(self, collate_fn=value or default)
        if name == "batch_transform":
            check_callable(value, name)
            return dataclasses.replace(self, batch_transform=value)
        raise AttributeError(name)


def resolve_batching(
    dataset: Any,
    *,
    batch_size: Any = DEFAULT_BATCH_SIZE,
    shuffle: Any = False,
    sampler: Any = None,
    batch_sampler: Any = None,
    drop_last: Any = False,
    collate_fn: Any = None,
    seed: Any = None,
    generator: Any = None,
    batch_transform: Any = None,
) -> Batching:
    """Check the batching arguments of a ``DataLoader`` and resolve them into a :class:`Batching`.

    Raises:
        TypeError: an argument of the wrong type (named in the message).
        ValueError: a combination torch refuses too: ``shuffle`` with ``sampler``;
            ``batch_sampler`` with ``batch_size``, ``shuffle``, ``sampler`` or ``drop_last``;
            ``batch_size=None`` with ``drop_last``; an ``IterableDataset`` with ``shuffle``,
            ``sampler`` or ``batch_sampler``.
    """
    check_dataset(dataset, indexed=sampler is not None or batch_sampler is not None)
    iterable = is_iterable_dataset(dataset)
    shuffle = False if shuffle is None else check_bool(shuffle, "shuffle")
    drop_last = check_bool(drop_last, "drop_last")
    check_callable(collate_fn, "collate_fn")
    check_callable(batch_transform, "batch_transform")
    seed_given = seed is not None or generator is not None
    seed = resolve_seed(seed, generator, owner="DataLoader")

    if iterable and (shuffle or sampler is not None or batch_sampler is not None):
        given = "shuffle=True" if shuffle else "sampler=" if sampler is not None else "batch_sampler="
        raise ValueError(
            f"{type(dataset).__name__} is an IterableDataset: it decides its own order, so {given} "
            "does not apply (shuffle=True, sampler= and batch_sampler= are for map-style datasets). "
            "Shuffle inside the dataset (see ShardedDataset's windowed shuffle) or use a map-style dataset"
        )
    if shuffle and sampler is not None:
        raise ValueError(
            "shuffle=True is mutually exclusive with sampler=: the sampler decides the order. Drop "
            "shuffle=True, or drop the sampler (shuffle=True uses a RandomSampler seeded with the "
            "loader's seed)"
        )
    if batch_sampler is not None:
        if batch_size not in (DEFAULT_BATCH_SIZE, 1) or shuffle or sampler is not None or drop_last:
            raise ValueError(
                "batch_sampler is mutually exclusive with batch_size, shuffle, sampler and drop_last: "
                "the batch sampler already decides batch size, order and the last batch. Pass only "
                "batch_sampler=, or drop it and use those arguments"
            )
        batch_size = None
    elif batch_size is DEFAULT_BATCH_SIZE:
        batch_size = 32
    elif batch_size is None:
        if drop_last:
            raise ValueError(
                "batch_size=None turns batching off, so drop_last=True has no batch to drop. Drop "
                "drop_last, or pass a batch_size"
            )
    else:
        batch_size = check_int(batch_size, "batch_size", minimum=1, hint="or None to turn batching off")

    library_sampler = False
    if not iterable:
        library_sampler = sampler is None and batch_sampler is None
        if sampler is None and batch_sampler is None:
            sampler = RandomSampler(dataset, seed=seed) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
    batched = batch_sampler is not None or (iterable and batch_size is not None)
    return Batching(
        dataset=dataset,
        iterable=iterable,
        batch_size=batch_size,
        drop_last=drop_last,
        shuffle=shuffle,
        sampler=sampler,
        batch_sampler=batch_sampler,
        collate_fn=collate_fn or (default_collate if batched else default_convert),
        seed=seed,
        batch_transform=batch_transform,
        batched=batched,
        library_sampler=library_sampler,
        seed_given=seed_given,
    )


@dataclass(frozen=True)
class WorkerOptions:
    """Where and how batches are made.

    Attributes:
        num_workers: 0 (the calling thread) or the number of workers.
        worker_type: ``"process"`` or ``"thread"``.
        prefetch_factor: batches in flight per worker, ``None`` without workers (default:
            :func:`default_prefetch_factor`).
        persistent_workers: keep the workers between epochs.
        timeout: seconds to wait for one batch (0: forever).
        worker_init_fn: called in each worker with its id before its first batch.
        multiprocessing_context: the start method's context, or ``None`` (the platform's).
        pin_memory: deliver batches as pinned torch tensors where CUDA is present.
    """

    num_workers: int = 0
    worker_type: str = "process"
    prefetch_factor: int | None = None
    persistent_workers: bool = False
    timeout: float = 0.0
    worker_init_fn: Callable[[int], None] | None = None
    multiprocessing_context: Any = None
    pin_memory: bool = False


def resolve_workers(
    *,
    num_workers: Any = 0,
    worker_type: Any = "process",
    prefetch_factor: Any = None,
    persistent_workers: Any = False,
    timeout: Any = 0,
    worker_init_fn: Any = None,
    multiprocessing_context: Any = None,
    pin_memory: Any = False,
) -> WorkerOptions:
    """Check the worker arguments of a ``DataLoader`` and resolve them into :class:`WorkerOptions`.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a value or combination torch refuses too (negative ``num_workers`` or
            ``timeout``, ``prefetch_factor`` without workers, ``persistent_workers`` without
            workers), or an unknown ``worker_type`` / start method.
    """
    num_workers = check_int(num_workers, "num_workers", hint="use 0 to load in the calling process")
    if not isinstance(worker_type, str) or worker_type not in ("process", "thread"):
        raise ValueError(f"worker_type must be 'process' or 'thread', got {worker_type!r}")
    timeout = check_float(timeout, "timeout", minimum=0, hint="seconds to wait for a batch; 0 waits forever")
    if prefetch_factor is None:
        prefetch_factor = default_prefetch_factor(num_workers, str(worker_type))
    elif num_workers == 0:
        raise ValueError(
            "prefetch_factor only applies with workers (num_workers > 0); with num_workers=0 drop it, "
            "or set num_workers"
        )
    else:
        prefetch_factor = check_int(prefetch_factor, "prefetch_factor", minimum=1)
    persistent_workers = check_bool(persistent_workers, "persistent_workers")
    if persistent_workers and num_workers == 0:
        raise ValueError(
            "persistent_workers=True needs num_workers > 0: there are no workers to keep. Set "
            "num_workers, or drop persistent_workers"
        )
    check_callable(worker_init_fn, "worker_init_fn")
    if multiprocessing_context is not None and num_workers == 0:
        raise ValueError(
            "multiprocessing_context only applies with worker processes (num_workers > 0), as in torch; "
            "drop it, or set num_workers"
        )
    return WorkerOptions(
        num_workers=num_workers,
        worker_type=str(worker_type),
        prefetch_factor=prefetch_factor,
        persistent_workers=persistent_workers,
        timeout=timeout,
        worker_init_fn=worker_init_fn,
        multiprocessing_context=check_context(multiprocessing_context),
        pin_memory=check_bool(pin_memory, "pin_memory"),
    )


def is_iterable_dataset(dataset: object) -> bool:
    """Whether ``dataset`` is read as a stream: an ``IterableDataset`` of ours or torch's, or an
    object that can only be iterated (WebDataset pipelines, Hugging Face streaming datasets).

    An object with ``__getitem__`` and ``__len__`` is map-style, whatever else it has (a list,
    torch's map-style datasets). torch is never imported here.
    """
    if isinstance(dataset, IterableDataset):
        return True
    torch_data = sys.modules.get("torch.utils.data")
    if torch_data is not None and isinstance(dataset, torch_data.IterableDataset):
        return True
    map_style = hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")
    return not map_style and hasattr(dataset, "__iter__")


def default_prefetch_factor(num_workers: int, worker_type: str) -> int | None:
    """``prefetch_factor`` when it is not given: none without workers, 4 for thread workers, 2
    (torch's) for process workers.

    Measured on the CIFAR augmentation pipeline, 2 persistent workers, 2 cores, medians of 9
    interleaved epochs (docs/benchmarks.md, "Where the second core goes"): thread workers
    deliver 27% more with 4 batches in flight per worker than with 2 (numba kernel; 8% with the
    numpy path), and nothing more with 8: a thread waiting for the GIL or a core no longer
    stalls the in-order delivery of the other's batches. Process workers gain nothing from a
    deeper window (-2% / +3%, within the noise), and each batch in flight is a block of
    shared memory, so they keep torch's 2. A thread worker's batches in flight are ordinary
    heap arrays, reused from the pool's arena.
    """
    if num_workers <= 0:
        return None
    return 4 if worker_type == "thread" else 2


def check_dataset(dataset: object, *, indexed: bool = False) -> None:
    """Raise ``TypeError`` unless ``dataset`` is map-style (``__getitem__`` + ``__len__``) or
    iterable. ``indexed``: the user passes the indices (``sampler=`` or ``batch_sampler=``), so
    ``__len__`` is not needed, as in torch."""
    if is_iterable_dataset(dataset):
        return
    if hasattr(dataset, "__getitem__") and (indexed or hasattr(dataset, "__len__")):
        return
    if hasattr(dataset, "__getitem__"):
        raise TypeError(
            f"{type(dataset).__name__} has __getitem__ but no __len__: define __len__ (the number of "
            "samples), or pass sampler= or batch_sampler= with the indices to read"
        )
    raise TypeError(
        f"DataLoader needs a map-style dataset (with __getitem__ and __len__) or an iterable one "
        f"(with __iter__), got {type(dataset).__name__}. Wrap arrays with TensorDataset(x, y); "
        "subclass IterableDataset for streams"
    )


def check_context(context: object) -> Any:
    """``None``, a start method's name (returned as its context) or a multiprocessing context."""
    if context is None:
        return None
    if not isinstance(context, str):
        if not callable(getattr(context, "get_start_method", None)):
            raise TypeError(
                f"multiprocessing_context must be a start method's name ({mp.get_all_start_methods()}) "
                f"or a multiprocessing context, got {type(context).__name__} {context!r}"
            )
        return context
    methods = mp.get_all_start_methods()
    if context not in methods:
        raise ValueError(
            f"multiprocessing_context must be one of {methods} or a multiprocessing context, got {context!r}"
        )
    return mp.get_context(context)


def check_callable(fn: object, name: str) -> None:
    """Raise ``TypeError`` unless ``fn`` is callable or ``None``."""
    if fn is not None and not callable(fn):
        raise TypeError(f"{name} must be callable or None, got {type(fn).__name__} {fn!r}")
