"""``DataLoader``: PyTorch's loader API over a deterministic, vectorized pipeline.

The constructor only validates and stores. Each ``iter(loader)`` starts one
epoch: it plans the epoch's index batches (a pure function of the seed and the
epoch), then makes batch after batch with a fetcher. See docs/architecture.md
for the determinism contract.
"""

from __future__ import annotations

import multiprocessing as mp
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final

from tinytorch.data.collate.default import default_collate, default_convert
from tinytorch.data.datasets.base import Dataset, IterableDataset, has_len
from tinytorch.data.fetch.fetcher import BatchTransform, IterableFetcher, MapFetcher
from tinytorch.data.loader.epoch import Epoch, in_process, iterable_batches, plan_tasks
from tinytorch.data.loader.pinning import pin_memory_function
from tinytorch.data.loader.stats import LoaderStats, StatsRecorder
from tinytorch.data.loader.workers import WorkerSet
from tinytorch.data.sampling.batching import BatchSampler
from tinytorch.data.sampling.samplers import RandomSampler, SequentialSampler
from tinytorch.data.seeding import check_seed, fresh_seed
from tinytorch.data.validate import check_bool, check_int

__all__ = ["DataLoader"]


class _Default:
    def __repr__(self) -> str:
        return "32"


_DEFAULT_BATCH_SIZE: Final = _Default()
"""``batch_size`` not given: 32 (the seed's default), or none when a batch_sampler is given."""


class DataLoader:
    """Iterate over a dataset in batches, reproducibly.

    Args:
        dataset: a map-style :class:`Dataset` (``len`` + indexing, optionally
            ``__getitems__``) or an :class:`IterableDataset`.
        batch_size: samples per batch (default 32, as in the seed), or ``None``
            to turn batching off: each sample goes through ``collate_fn``
            (default: returned as is).
        shuffle: a new random order each epoch (map-style datasets only).
        sampler: the order of indices (an iterable of ints); excludes ``shuffle``.
        batch_sampler: yields whole index batches; excludes ``batch_size``,
            ``shuffle``, ``sampler`` and ``drop_last``.
        num_workers: 0 loads in the calling process; ``n > 0`` starts ``n`` workers.
        collate_fn: list of samples → batch; default :func:`default_collate`.
        drop_last: drop the last, incomplete batch.
        seed: the seed every random choice derives from. ``None`` draws one from
            OS entropy now; it is exposed as :attr:`seed` so the run can be repeated.
        batch_transform: ``f(batch, rng) -> batch`` applied to each collated
            batch, ``rng`` derived from ``(seed, epoch, batch index)``.
        pin_memory: with torch installed and CUDA available, batches are delivered as
            pinned torch tensors (for fast, asynchronous copies to the GPU); otherwise it
            does nothing (numpy arrays cannot be pinned), and ``loader.pin_memory_active``
            says which.
        timeout: seconds to wait for a batch from the workers before raising
            ``WorkerTimeoutError`` (0: wait forever; a dead worker is reported at once anyway).
        worker_init_fn: called in each worker with its id before it makes any batch.
        multiprocessing_context: start method (``"fork"``, ``"spawn"``, ``"forkserver"``) or a
            context; default: the platform's.
        generator: not supported; use ``seed`` (an epoch's order must be a pure
            function of the seed and the epoch).
        prefetch_factor: batches in flight per worker (default 2 when there are workers).
        persistent_workers: keep the workers between epochs (the dataset copy in each process
            worker is kept too).
        worker_type: ``"process"`` (default: true parallelism for Python code; batches travel
            through shared memory) or ``"thread"`` (no start-up cost, no pickling, no shared
            memory; parallel where the work releases the GIL, as numpy does).
        stats: record per-stage statistics (:meth:`stats`); ``False`` turns recording off.

    Epochs: each ``iter(loader)`` runs the epoch :attr:`epoch` and then advances
    it by one; ``set_epoch(n)`` chooses the epoch of the next ``iter``.
    Batch ``k`` of epoch ``e`` is a pure function of the dataset, the sampler
    settings, ``seed``, ``e`` and ``k``.
    """

    def __init__(
        self,
        dataset: Dataset[Any] | IterableDataset[Any],
        batch_size: int | _Default | None = _DEFAULT_BATCH_SIZE,
        shuffle: bool | None = False,
        sampler: Iterable[int] | None = None,
        batch_sampler: Iterable[Any] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[Any], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        seed: int | None = None,
        batch_transform: BatchTransform | None = None,
        worker_type: str = "process",
        stats: bool = True,
    ) -> None:
        _check_dataset(dataset)
        shuffle = check_bool(bool(shuffle) if shuffle is None else shuffle, "shuffle")
        drop_last = check_bool(drop_last, "drop_last")
        self.num_workers = check_int(num_workers, "num_workers", hint="use 0 to load in the calling process")
        if generator is not None:
            raise TypeError(
                "DataLoader takes seed=<int> instead of generator=: batches are a pure function "
                "of (seed, epoch, batch index). Replace generator=torch.Generator().manual_seed(s) "
                "with seed=s"
            )
        _check_callable(collate_fn, "collate_fn")
        _check_callable(batch_transform, "batch_transform")
        _check_callable(worker_init_fn, "worker_init_fn")
        self.worker_type = _check_worker_type(worker_type)
        self.timeout = _check_timeout(timeout)
        self.prefetch_factor = _check_prefetch(prefetch_factor, self.num_workers)
        self.persistent_workers = check_bool(persistent_workers, "persistent_workers")
        if self.persistent_workers and self.num_workers == 0:
            raise ValueError(
                "persistent_workers=True needs num_workers > 0: there are no workers to keep. "
                "Set num_workers, or drop persistent_workers"
            )
        self.multiprocessing_context = _check_context(multiprocessing_context)
        if self.num_workers > 0 and isinstance(dataset, IterableDataset):
            raise ValueError(
                f"num_workers={self.num_workers} with an IterableDataset is not supported: a "
                "stream cannot be split into batches that any worker can make independently. "
                "Use num_workers=0, or a map-style dataset (ShardedDataset, TensorDataset)"
            )

        self.dataset = dataset
        self.seed = fresh_seed() if seed is None else check_seed(seed)
        self.drop_last = drop_last
        self.pin_memory = check_bool(pin_memory, "pin_memory")
        self._pin = pin_memory_function() if self.pin_memory else None
        self.worker_init_fn = worker_init_fn
        self.batch_transform = batch_transform
        self._epoch = 0
        self._own_sampler = False
        self._workers: WorkerSet | None = None
        self.record_stats = check_bool(stats, "stats")
        self._stats: list[LoaderStats] = []
        self._finalizer: weakref.finalize[Any, Any] | None = None

        if batch_sampler is not None:
            if (
                batch_size not in (_DEFAULT_BATCH_SIZE, 1, None)
                or shuffle
                or sampler is not None
                or drop_last
            ):
                raise ValueError(
                    "batch_sampler is mutually exclusive with batch_size, shuffle, sampler and "
                    "drop_last: the batch sampler already decides batch size, order and the last "
                    "batch. Pass only batch_sampler=, or drop it and use those arguments"
                )
            batch_size = None
        elif batch_size is _DEFAULT_BATCH_SIZE:
            batch_size = 32
        elif batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", minimum=1, hint="or None to turn batching off")

        if isinstance(dataset, IterableDataset):
            if shuffle or sampler is not None or batch_sampler is not None:
                raise ValueError(
                    f"{type(dataset).__name__} is an IterableDataset: it decides its own order, so "
                    "shuffle=True, sampler= and batch_sampler= do not apply. Shuffle inside the "
                    "dataset (see ShardedDataset's windowed shuffle) or use a map-style dataset"
                )
        else:
            if shuffle and sampler is not None:
                raise ValueError(
                    "shuffle=True is mutually exclusive with sampler=: the sampler decides the "
                    "order. Drop shuffle=True, or drop the sampler (shuffle=True uses a "
                    "RandomSampler seeded with the loader's seed)"
                )
            self._own_sampler = sampler is None and batch_sampler is None
            if sampler is None:
                sampler = RandomSampler(dataset, seed=self.seed) if shuffle else SequentialSampler(dataset)
            if batch_size is not None and batch_sampler is None:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size: int | None = batch_size
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self._auto_collation = batch_sampler is not None or (
            isinstance(dataset, IterableDataset) and batch_size is not None
        )
        self.collate_fn = collate_fn or (default_collate if self._auto_collation else default_convert)

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter(loader)`` will run."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch of the next ``iter(loader)`` (non-negative int)."""
        self._epoch = check_int(epoch, "epoch")

    @property
    def pin_memory_active(self) -> bool:
        """Whether batches are really pinned (``pin_memory=True``, torch and CUDA present)."""
        return self._pin is not None

    def stats(self, which: str = "current") -> LoaderStats | None:
        """Statistics of the ``"current"`` epoch (running or just finished) or the ``"last"`` one.

        ``None`` before any epoch (or with ``stats=False``). See :class:`LoaderStats`; pass
        it to :func:`tinytorch.analysis.diagnose` for a plain-words diagnosis.
        """
        if which not in ("current", "last"):
            raise ValueError(f"stats(which=...) takes 'current' or 'last', got {which!r}")
        position = -1 if which == "current" else -2
        return self._stats[position] if len(self._stats) >= -position else None

    def _recorder(self, epoch: int) -> StatsRecorder | None:
        if not self.record_stats:
            return None
        kind = self.worker_type if self.num_workers else "in-process"
        stats = LoaderStats(epoch, self.num_workers, kind)
        self._stats = [*self._stats[-1:], stats]
        return StatsRecorder(stats)

    def __iter__(self) -> Epoch:
        epoch = self._epoch
        self._epoch += 1
        length = self._len_or_none()
        recorder = self._recorder(epoch)
        if isinstance(self.dataset, IterableDataset):
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            stream = IterableFetcher(
                iter(self.dataset),
                self.collate_fn,
                batch_size=self.batch_size,
                drop_last=self.drop_last,
                seed=self.seed,
                batch_transform=self.batch_transform,
            )
            return Epoch(
                iterable_batches(stream, epoch),
                epoch,
                length=length,
                deliver=self._pin,
                recorder=recorder,
            )
        fetcher = MapFetcher(
            self.dataset,
            self.collate_fn,
            batched=self._auto_collation,
            seed=self.seed,
            batch_transform=self.batch_transform,
        )
        index_source = self.batch_sampler if self._auto_collation else self.sampler
        assert index_source is not None  # set in __init__ for map-style datasets
        tasks = plan_tasks(
            index_source,
            epoch,
            batched=self._auto_collation,
            dataset_length=len(self.dataset),
            trusted=self._own_sampler,
        )
        if self.num_workers == 0:
            return Epoch(
                in_process(fetcher.make, tasks),
                epoch,
                length=length,
                deliver=self._pin,
                recorder=recorder,
            )
        batches, finish = self._worker_set(fetcher).run(tasks)
        return Epoch(
            batches,
            epoch,
            length=length,
            finish=finish,
            deliver=self._pin,
            owner=self,
            recorder=recorder,
        )

    def _worker_set(self, fetcher: MapFetcher) -> WorkerSet:
        if self._workers is None:
            self._workers = WorkerSet(
                fetcher.make,
                self.dataset,
                kind=self.worker_type,
                num_workers=self.num_workers,
                prefetch_factor=self.prefetch_factor or 2,
                persistent=self.persistent_workers,
                timeout=self.timeout,
                seed=self.seed,
                worker_init_fn=self.worker_init_fn,
                context=self.multiprocessing_context,
            )
            self._finalizer = weakref.finalize(self, self._workers.close)
        return self._workers

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of this loader's running worker processes (for monitoring and tests).

        With the ``fork`` start method, ``iter()`` starts worker 0 and the others start when the
        first batch is asked for (so worker 0 begins loading sooner); until then only worker
        0's pid is listed.
        """
        return [] if self._workers is None else self._workers.pids

    def close(self) -> None:
        """Stop every worker of this loader (a later ``iter`` starts new ones)."""
        if self._workers is not None:
            self._workers.close()

    def __enter__(self) -> DataLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _len_or_none(self) -> int | None:
        try:
            return len(self)
        except TypeError:
            return None

    def __len__(self) -> int:
        """Batches per epoch (samples per epoch when ``batch_size`` is ``None``).

        Raises:
            TypeError: the dataset is an ``IterableDataset`` without ``__len__``,
                or the sampler has no ``len()``.
        """
        if isinstance(self.dataset, IterableDataset):
            if not has_len(self.dataset):
                raise TypeError(
                    f"len(DataLoader) is unknown: {type(self.dataset).__name__} is an "
                    "IterableDataset without __len__, so the number of batches is only known "
                    "after iterating. Define __len__ on the dataset if its size is known"
                )
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        source = self.batch_sampler if self._auto_collation else self.sampler
        if not has_len(source):
            raise TypeError(f"len(DataLoader) is unknown: the {type(source).__name__} has no __len__")
        return len(source)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
            f"num_workers={self.num_workers}, seed={self.seed})"
        )


def _check_dataset(dataset: object) -> None:
    if isinstance(dataset, IterableDataset):
        return
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(
            f"DataLoader needs a map-style dataset (with __getitem__ and __len__) or an "
            f"IterableDataset, got {type(dataset).__name__}. Wrap arrays with "
            "TensorDataset(x, y); subclass IterableDataset for streams"
        )


def _check_worker_type(kind: object) -> str:
    if kind not in ("process", "thread"):
        raise ValueError(f"worker_type must be 'process' or 'thread', got {kind!r}")
    return str(kind)


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(
            f"timeout must be a non-negative number of seconds (0 waits forever), got {timeout!r}"
        )
    return float(timeout)


def _check_prefetch(prefetch_factor: object, num_workers: int) -> int | None:
    if prefetch_factor is None:
        return 2 if num_workers > 0 else None
    if num_workers == 0:
        raise ValueError(
            "prefetch_factor only applies with workers (num_workers > 0); with num_workers=0 "
            "drop it, or set num_workers"
        )
    return check_int(prefetch_factor, "prefetch_factor", minimum=1)


def _check_context(context: object) -> Any:
    if context is None or not isinstance(context, str):
        return context
    methods = mp.get_all_start_methods()
    if context not in methods:
        raise ValueError(
            f"multiprocessing_context must be one of {methods} or a multiprocessing context, got {context!r}"
        )
    return mp.get_context(context)


def _check_callable(fn: object, name: str) -> None:
    if fn is not None and not callable(fn):
        raise TypeError(f"{name} must be callable or None, got {type(fn).__name__} {fn!r}")
