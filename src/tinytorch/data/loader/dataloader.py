"""``DataLoader``: PyTorch's loader API over a deterministic, vectorized pipeline.

The constructor only checks and stores: the arguments are resolved once by
:mod:`tinytorch.data.loader.config` into two immutable values. Each ``iter(loader)`` starts one
epoch: it plans the epoch's tasks (a pure function of the seed and the epoch), starts the batch
source (this thread, or workers), and returns the :class:`~tinytorch.data.loader.epoch.Epoch`
that delivers them. See docs/architecture.md for the determinism contract.
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar, overload

from tinytorch.data.cpus import available_cores
from tinytorch.data.datasets.base import Dataset, IterableDataset, NoLengthError
from tinytorch.data.fetch.fetcher import BatchTask, BatchTransform, MapFetcher, StreamFetcher
from tinytorch.data.loader.config import (
    DEFAULT_BATCH_SIZE,
    FIXED_AFTER_INIT,
    Batching,
    WorkerOptions,
    resolve_batching,
    resolve_workers,
)
from tinytorch.data.loader.epoch import Epoch, EpochProgress, in_process, plan_tasks, stream_batches
from tinytorch.data.loader.pinning import pin_memory_function
from tinytorch.data.loader.pools import Lease, PoolStrategy, Prefetcher, WorkerBatches, ordered, pool_strategy
from tinytorch.data.loader.resume import Resume, check_state, loader_state
from tinytorch.data.loader.stats import LoaderStats, StatsRecorder
from tinytorch.data.loader.user_sampler import UserSampler, passed_sampler
from tinytorch.data.validate import check_bool, check_int
from tinytorch.data.workers.loop import PoolSpec
from tinytorch.data.workers.streams import StreamPrefetcher

__all__ = ["DataLoader"]

T_co = TypeVar("T_co", covariant=True)
V = TypeVar("V")


class _Setting(Generic[V]):
    """A ``DataLoader`` attribute that lives in its resolved configuration (one place)."""

    def __init__(self, where: str) -> None:
        self.where = where  # "_batching" or "_options"
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _Setting[V]: ...

    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> V: ...

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.where), self.name)

    def __set__(self, obj: DataLoader[Any], value: V) -> None:
        obj._set(self.name, value)


class DataLoader(Generic[T_co]):
    """Iterate over a dataset in batches, reproducibly.

    Args:
        dataset: a map-style :class:`Dataset` (``len`` + indexing, optionally
            ``__getitems__``) or an :class:`IterableDataset`.
        batch_size: samples per batch (default 32, as in the seed; torch's is 1), or ``None``
            to turn batching off: each sample goes through ``collate_fn`` (default: returned as is).
        shuffle: a new random order each epoch (map-style datasets only).
        sampler: the order of indices (an iterable of ints); excludes ``shuffle``.
        batch_sampler: yields whole index batches; excludes ``batch_size``,
            ``shuffle``, ``sampler`` and ``drop_last``.
        num_workers: 0 loads in the calling process; ``n > 0`` starts ``n`` workers.
        collate_fn: list of samples → batch; default :func:`default_collate`. A ``collate_fn``
            of yours always receives a plain ``list`` of samples.
        pin_memory: with torch installed and CUDA available, batches are delivered as
            pinned torch tensors (for fast, asynchronous copies to the GPU); otherwise it
            does nothing (numpy arrays cannot be pinned), and ``loader.pin_memory_active``
            says which.
        drop_last: drop the last, incomplete batch.
        timeout: seconds to wait for a batch from the workers before raising
            ``WorkerTimeoutError`` (0: wait forever; a dead worker is reported at once anyway).
        worker_init_fn: called in each worker with its id before it makes any batch.
        multiprocessing_context: start method (``"fork"``, ``"spawn"``, ``"forkserver"``) or a
            context; default: the platform's.
        generator: a ``torch.Generator``, meaning ``seed=generator.initial_seed()`` (so
            ``generator=torch.Generator().manual_seed(s)`` is ``seed=s``); only its seed is used.
        prefetch_factor: batches in flight per worker (default 2 when there are workers).
        persistent_workers: keep the workers between epochs (the dataset copy in each process
            worker is kept too). They run one epoch at a time.
        pin_memory_device: accepted for torch compatibility (torch deprecates it); unused.
        in_order: accepted for torch compatibility. Batches are always delivered in order
            (``in_order=False`` permits, and never requires, another order): order is part of
            the determinism contract.
        seed: the seed every random choice derives from. ``None`` draws one from OS entropy
            now; it is exposed as :attr:`seed` so the run can be repeated.
        batch_transform: ``f(batch, rng) -> batch`` applied to each collated batch, ``rng``
            derived from ``(seed, epoch, batch index)``.
        worker_type: ``"process"`` (default: true parallelism for Python code; batches travel
            through shared memory) or ``"thread"`` (no start-up cost, no pickling, no shared
            memory; parallel where the work releases the GIL, as numpy does).
        stats: record per-stage statistics (:meth:`stats`); ``False`` turns recording off.

    Epochs: each ``iter(loader)`` runs the epoch :attr:`epoch` and then advances it by one;
    ``set_epoch(n)`` chooses the epoch of the next ``iter``. Batch ``k`` of epoch ``e`` is a
    pure function of the dataset, the sampler settings, ``seed``, ``e`` and ``k``. A sampler
    you pass keeps the epoch you give it: if you call ``sampler.set_epoch(e)`` (as torch
    documents for ``DistributedSampler``), the loader runs epoch ``e`` too; otherwise the loader
    sets the sampler's epoch to its own (see docs/architecture.md, "Epochs").

    Attributes fixed after construction (assigning raises ``ValueError``, as in torch):
    ``dataset``, ``batch_size``, ``shuffle``, ``sampler``, ``batch_sampler``, ``drop_last``,
    ``seed``, ``persistent_workers``. The others can be assigned; the value is checked as in
    the constructor and takes effect from the next ``iter(loader)`` for every worker type.

    Raises:
        TypeError, ValueError: bad arguments or combinations (the same combinations as torch).
    """

    collate_fn: _Setting[Callable[[Any], Any]] = _Setting("_batching")
    batch_transform: _Setting[BatchTransform | None] = _Setting("_batching")
    num_workers: _Setting[int] = _Setting("_options")
    worker_type: _Setting[str] = _Setting("_options")
    prefetch_factor: _Setting[int | None] = _Setting("_options")
    timeout: _Setting[float] = _Setting("_options")
    worker_init_fn: _Setting[Callable[[int], None] | None] = _Setting("_options")
    multiprocessing_context: _Setting[Any] = _Setting("_options")
    pin_memory: _Setting[bool] = _Setting("_options")

    def __init__(
        self,
        dataset: Dataset[T_co],
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        shuffle: bool | None = None,
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
        pin_memory_device: str = "",
        in_order: bool = True,
        seed: int | None = None,
        batch_transform: BatchTransform | None = None,
        worker_type: str = "process",
        stats: bool = True,
    ) -> None:
        self._worker_args: dict[str, Any] = {
            "num_workers": num_workers,
            "worker_type": worker_type,
            "prefetch_factor": prefetch_factor,
            "persistent_workers": persistent_workers,
            "timeout": timeout,
            "worker_init_fn": worker_init_fn,
            "multiprocessing_context": multiprocessing_context,
            "pin_memory": pin_memory,
        }
        self._options: WorkerOptions = resolve_workers(**self._worker_args)
        self._batching_args: dict[str, Any] = {
            "batch_size": batch_size,
            "shuffle": shuffle,
            "sampler": sampler,
            "batch_sampler": batch_sampler,
            "drop_last": drop_last,
            "collate_fn": collate_fn,
            "seed": seed,
            "generator": generator,
            "batch_transform": batch_transform,
        }
        self._batching: Batching = resolve_batching(dataset, **self._batching_args)
        if not isinstance(pin_memory_device, str):
            raise TypeError(f"pin_memory_device must be a str, got {type(pin_memory_device).__name__}")
        self.in_order = check_bool(in_order, "in_order")
        self.record_stats = check_bool(stats, "stats")
        self._epoch = 0
        self._epoch_given = False  # set_epoch() called since the last iter()
        self._user = UserSampler(self._batching)  # the user's sampler: its epoch, state, passes
        self._fetcher: MapFetcher | StreamFetcher | None = None
        self._progress: EpochProgress | None = None  # of the epoch started last
        self._resume: Resume | None = None  # set by load_state_dict() for the next iter()
        self._spec: PoolSpec | None = None
        self._pools: PoolStrategy | None = None
        self._pin = pin_memory_function() if self._options.pin_memory else None
        self._stats: list[LoaderStats] = []
        self._warned_workers = False
        self._initialized = True

    # ---- settings ------------------------------------------------------------------------

    @property
    def dataset(self) -> Dataset[T_co]:
        return self._batching.dataset  # type: ignore[no-any-return]

    @property
    def batch_size(self) -> int | None:
        return self._batching.batch_size

    @property
    def shuffle(self) -> bool:
        return self._batching.shuffle

    @property
    def sampler(self) -> Iterable[int] | None:
        return self._batching.sampler

    @property
    def batch_sampler(self) -> Iterable[Any] | None:
        return self._batching.batch_sampler

    @property
    def drop_last(self) -> bool:
        return self._batching.drop_last

    @property
    def seed(self) -> int:
        """The seed every random choice derives from (drawn once when ``seed=None``)."""
        return self._batching.seed

    @property
    def persistent_workers(self) -> bool:
        return self._options.persistent_workers

    def __setattr__(self, name: str, value: Any) -> None:
        if name in FIXED_AFTER_INIT and getattr(self, "_initialized", False):
            raise ValueError(
                f"{name} attribute should not be set after DataLoader is initialized (as in torch): it "
                "decides which samples form which batch. Build a new DataLoader with the new value"
            )
        super().__setattr__(name, value)

    def _set(self, name: str, value: Any) -> None:
        """Assign a setting after construction: checked as in the constructor, effective from
        the next epoch for every worker type (persistent workers restart if they must)."""
        if name in ("collate_fn", "batch_transform"):
            self._batching = self._batching.with_setting(name, value)
            self._batching_args[name] = value
        else:
            arguments = {**self._worker_args, name: value}
            options = resolve_workers(**arguments)
            restart = (options.num_workers, options.worker_type, options.multiprocessing_context) != (
                self._options.num_workers,
                self._options.worker_type,
                self._options.multiprocessing_context,
            )
            self._worker_args, self._options = arguments, options
            if name == "pin_memory":
                self._pin = pin_memory_function() if options.pin_memory else None
            if restart:  # new workers from the next epoch on; a running epoch keeps its own
                if self._pools is not None:
                    self._pools.retire()
                self._pools = None
        self._fetcher, self._spec = None, None  # rebuilt from the new settings at the next iter()

    # ---- epochs --------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter(loader)`` will run."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch of the next ``iter(loader)`` (non-negative int)."""
        self._epoch = check_int(epoch, "epoch")
        self._epoch_given = True

    def _next_epoch(self) -> int:
        """The epoch ``iter()`` runs now: the loader's, or the one the user set on their sampler
        (:meth:`UserSampler.start_epoch <tinytorch.data.loader.user_sampler.UserSampler.start_epoch>`)."""
        epoch = self._user.start_epoch(self._epoch, given=self._epoch_given, resume=self._resume)
        self._epoch, self._epoch_given = epoch + 1, False
        return epoch

    def __iter__(self) -> Epoch:
        """Start the next epoch: plan its tasks, start the batch source, return the iterator."""
        epoch = self._next_epoch()
        resume, self._resume = (
            (self._resume, None) if self._resume and self._resume.epoch == epoch else (None, None)
        )
        start = resume.start if resume else 0
        b, options = self._batching, self._options
        self._user.catch_up(resume.sampler_passes if resume else None)
        progress = self._progress = EpochProgress(epoch, start)
        recorder = self._recorder(epoch)
        length = self._len_or_none()
        if options.num_workers == 0:
            batches = (
                stream_batches(
                    self._fetcher_for(b),  # type: ignore[arg-type]
                    epoch,
                    start=start,
                    seed_globals=b.draws_from_global_rngs,
                )
                if b.iterable
                else in_process(
                    self._fetcher_for(b).make,
                    self._tasks(epoch, start),
                    seed=self._globals_seed(),
                    plan_with_users_rngs=not b.library_sampler,
                )
            )
            return Epoch(
                batches, epoch, length=length, deliver=self._pin, recorder=recorder, progress=progress
            )
        self._warn_about_workers(options.num_workers)
        window = options.prefetch_factor or 2
        prefetcher: Callable[[Lease], Prefetcher]
        if b.iterable:
            prefetcher = self._streams(epoch, progress, resume, window=window)
        else:
            prefetcher = ordered(
                self._tasks(epoch, start), window=window, timeout=options.timeout, start=start
            )
        workers = WorkerBatches(self._pool_strategy(), self._pool_spec(), prefetcher)
        return Epoch(
            workers,
            epoch,
            length=length,
            finish=workers.close,
            deliver=self._pin,
            owner=self,
            recorder=recorder,
            progress=progress,
        )

    def _globals_seed(self) -> int | None:
        """The seed for the global generators, or ``None`` when nothing in the batch path draws
        from them (only this library's code runs), so the loader leaves them alone."""
        b = self._batching
        return b.seed if b.draws_from_global_rngs else None

    def _tasks(self, epoch: int, start: int) -> Iterator[BatchTask]:
        b = self._batching
        assert b.index_source is not None  # map-style datasets always have one
        return plan_tasks(
            b.index_source,
            epoch,
            batched=b.batched,
            dataset_length=self._dataset_length(),
            trusted=b.library_sampler,
            start=start,
        )

    def _streams(
        self, epoch: int, progress: EpochProgress, resume: Resume | None, *, window: int
    ) -> Callable[[Lease], Prefetcher]:
        timeout = self._options.timeout

        def start(lease: Lease) -> Prefetcher:
            streams = StreamPrefetcher(
                lease.pool,
                lease.inflight,
                epoch,
                generation=lease.generation,
                window=window,
                timeout=timeout,
                resume=resume.streams if resume else None,
            )
            progress.streams = streams
            return streams

        return start

    def _fetcher_for(self, b: Batching) -> MapFetcher | StreamFetcher:
        if self._fetcher is None:
            if b.iterable:
                self._fetcher = StreamFetcher(
                    b.dataset,
                    b.collate_fn,
                    batch_size=b.batch_size,
                    drop_last=b.drop_last,
                    seed=b.seed,
                    batch_transform=b.batch_transform,
                )
            else:
                self._fetcher = MapFetcher(
                    b.dataset,
                    b.collate_fn,
                    batched=b.batched,
                    seed=b.seed,
                    batch_transform=b.batch_transform,
                    plain_samples=not b.library_collate,
                )
        return self._fetcher

    # ---- resume ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Where this loader is in its run: small, JSON-serializable (torchdata's name).

        A fresh loader built with the same dataset and settings that calls
        :meth:`load_state_dict` with it yields, from its next ``iter()``, exactly the batches this
        loader would have yielded next, byte for byte, with any ``num_workers`` and worker type
        (for an ``IterableDataset`` read by workers, the same ``num_workers``). Call it between
        batches: the position is the number of batches handed to you, whatever the workers
        had prefetched. Save it with the model and optimizer in the same checkpoint.

        Returns:
            ``{"format", "version", "seed", "epoch", "batches_delivered", "dataset",
            "dataset_length", "batch_size", "drop_last", "num_workers", "num_replicas",
            "sampler_seed", "sampler_settings", "sampler_passes", "streams", "sampler"}``
            (``num_replicas``: the world size of a distributed sampler, else ``None``; the
            state names no rank, as ranks run in lockstep; ``sampler_seed`` and
            ``sampler_settings``: the seed and the order-deciding settings (``window``,
            ``drop_last``...) of a sampler you passed, else ``None``; ``sampler_passes``: for a
            sampler of yours whose order may change with each pass, the passes made before
            this epoch, which a resumed loader replays); ``epoch``/``batches_delivered`` are
            the running epoch's (or the next epoch and 0 once it finished or ``set_epoch``
            chose another). An epoch broken off (``break``, an exception) is still the running
            one, as in torchdata's ``StatefulDataLoader``: a checkpoint taken in an ``except``
            block resumes it where it stopped, while this loader's next ``iter()`` starts the
            next epoch. ``sampler`` is your sampler's own ``state_dict()`` at the start of the
            epoch when it has one.
        """
        p = self._progress
        running = p is not None and not p.finished and not self._epoch_given and self._resume is None
        if running:
            assert p is not None
            epoch, delivered = p.epoch, p.delivered
            streams = p.streams.state() if p.streams is not None else None
            sampler_state, passes = self._user.state_at_start, self._user.passes - 1
        elif self._resume is not None:
            r = self._resume
            epoch, delivered, streams, sampler_state = r.epoch, r.start, r.streams, r.sampler_state
            passes = self._user.passes if r.sampler_passes is None else r.sampler_passes
        else:  # between epochs: the sampler's state now is the one the next epoch starts from
            epoch, delivered, streams, passes = self._epoch, 0, None, self._user.passes
            sampler_state = self._user.state_now()
        return self._state(epoch, delivered, streams, sampler_state, passes)

    def _state(
        self, epoch: int, delivered: int, streams: Any, sampler_state: Any, passes: int | None = None
    ) -> dict[str, Any]:
        b = self._batching
        return loader_state(
            seed=b.seed,
            epoch=epoch,
            delivered=delivered,
            iterable=b.iterable,
            dataset_length=self._dataset_length(),
            batch_size=b.batch_size,
            drop_last=b.drop_last,
            num_workers=self._options.num_workers,
            streams=streams,
            sampler_state=sampler_state,
            num_replicas=self._user.num_replicas,
            sampler_seed=self._user.seed,
            sampler_passes=passes if self._user.counts_passes else None,
            sampler_settings=self._user.settings,
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next ``iter()`` continue the run ``state`` was saved from (see :meth:`state_dict`).

        A loader built with ``seed=None`` takes the saved run's seed (its own was drawn, not
        chosen); one built with ``seed=`` or ``generator=`` must have the saved seed.

        Raises:
            TypeError, ValueError: ``state`` is not a loader state, of another format version, or
                from a loader with another seed, dataset length, batch size, ``drop_last``,
                sampler world size or seed of the sampler you passed (for a stream read by
                workers: another ``num_workers``); the message names the field.
        """
        saved_seed = state.get("seed") if isinstance(state, dict) else None
        if not self._batching.seed_given and isinstance(saved_seed, int) and saved_seed != self.seed:
            self._adopt_seed(saved_seed)
        resume = check_state(state, self._state(0, 0, None, None))
        self._user.check_resume(resume)
        length = self._len_or_none()
        if length is not None and resume.start > length:
            raise ValueError(
                f"load_state_dict(): state['batches_delivered'] is {resume.start}, but an epoch of this "
                f"loader has {length} batches; pass what state_dict() returned"
            )
        self._resume = resume
        self._epoch, self._epoch_given = resume.epoch, False
        self._progress = None

    def _adopt_seed(self, seed: int) -> None:
        """Take a saved run's seed: this loader's was drawn (``seed=None``), not chosen."""
        args = {**self._batching_args, "seed": seed, "generator": None}
        batching = resolve_batching(self._batching.dataset, **args)
        self._batching = dataclasses.replace(batching, seed_given=False)
        self._fetcher, self._spec = None, None  # persistent workers restart with the new spec

    def _dataset_length(self) -> int | None:
        try:
            return len(self._batching.dataset)
        except TypeError:
            return None

    def _pool_spec(self) -> PoolSpec:
        if self._spec is None:
            b, options = self._batching, self._options
            self._spec = PoolSpec(
                self._fetcher_for(b).make,
                b.dataset,
                options.num_workers,
                b.seed,
                options.worker_init_fn,
                seed_globals=b.draws_from_global_rngs,
            )
        return self._spec

    def _pool_strategy(self) -> PoolStrategy:
        if self._pools is None:
            options = self._options
            self._pools = pool_strategy(
                options.worker_type,
                persistent=options.persistent_workers,
                context=options.multiprocessing_context,
            )
            # The safety net holds only the pools' stoppers: a dataset or collate_fn that refers
            # back to the loader's owner must not keep the loader (and its workers) alive.
            weakref.finalize(self, self._pools.stoppers)
        return self._pools

    def _warn_about_workers(self, num_workers: int) -> None:
        cpus = available_cores()
        if self._warned_workers or num_workers <= cpus:
            return
        self._warned_workers = True
        warnings.warn(
            f"This DataLoader will create {num_workers} worker {_plural(self.worker_type)}, but this "
            f"process may use only {cpus} CPU{'s' * (cpus != 1)}: workers beyond the CPUs time-share "
            f"them and make epochs slower (measured: 3-4 workers on 2 cores ran ~20% slower than 2). Use "
            f"num_workers <= {cpus}",
            UserWarning,
            stacklevel=3,
        )

    # ---- statistics, workers, length -------------------------------------------------------

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
        kind = self._options.worker_type if self._options.num_workers else "in-process"
        b = self._batching
        batched = None if b.iterable else hasattr(b.dataset, "__getitems__")
        stats = LoaderStats(epoch, self._options.num_workers, kind, batched_reads=batched)
        self._stats = [*self._stats[-1:], stats]
        return StatsRecorder(stats)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of this loader's running worker processes (for monitoring and tests).

        With the ``fork`` start method, ``iter()`` starts worker 0 and the others start when the
        first batch is asked for (so worker 0 begins loading sooner); until then only worker
        0's pid is listed.
        """
        return [] if self._pools is None else self._pools.pids

    def close(self) -> None:
        """Stop every worker of this loader (a later ``iter`` starts new ones)."""
        if self._pools is not None:
            self._pools.close()

    def __enter__(self) -> DataLoader[T_co]:
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
            TypeError: the dataset is an ``IterableDataset`` without ``__len__``, the sampler or
                batch_sampler passed (or a sampler it takes its length from) has no ``__len__``,
                or a ``__len__`` raised ``TypeError`` (the cause is chained).
        """
        b = self._batching
        if b.iterable:
            try:
                n = len(b.dataset)
            except TypeError as e:
                raise _unknown_length(b, e) from e
            if b.batch_size is None:
                return n
            return n // b.batch_size if b.drop_last else -(-n // b.batch_size)
        try:
            return len(b.index_source)  # type: ignore[arg-type]
        except TypeError as e:
            raise _unknown_length(b, e) from e

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
            f"num_workers={self.num_workers}, seed={self.seed})"
        )


def _plural(kind: str) -> str:
    return "processes" if kind == "process" else f"{kind}s"


def _without_len(obj: Any) -> Any:
    """What has no ``__len__`` in ``obj`` or the samplers it takes its length from (``.sampler``,
    ``.data_source``, as torch's and this package's samplers name them), or ``None`` when all
    have one (a ``__len__`` that raised is then the cause). The base classes' ``__len__`` that
    only raises counts as none."""
    for _ in range(8):  # a chain of wrapped samplers; a cycle ends here
        length = getattr(type(obj), "__len__", None)
        if length is None or length in (Dataset.__len__, IterableDataset.__len__):
            return obj
        inner = next(
            (getattr(obj, a) for a in ("sampler", "data_source") if getattr(obj, a, None) is not None), None
        )
        if inner is None:
            return None
        obj = inner
    return None


def _unknown_length(b: Batching, error: TypeError) -> TypeError:
    """``len(DataLoader)`` failed with ``error``: what lacks a length, in the user's terms, and
    the fix. A ``__len__`` that raised ``TypeError`` (a float returned, a bug, or a deliberate
    "no length", torch's convention) is named with its own message."""
    if b.iterable or b.library_sampler:
        name = type(b.dataset).__name__
        missing = _without_len(b.dataset) is not None or isinstance(error, NoLengthError)
        if b.iterable:
            told = (
                f"{name} is an IterableDataset without __len__, so"
                if missing
                else f"len() of {name}, an IterableDataset, raised TypeError: {error}. Without a length"
            )
            return TypeError(
                f"len(DataLoader) is unknown: {told} the number of batches is only known after iterating. "
                "Define __len__ on the dataset, returning an int, if its size is known"
            )
        if missing:
            return TypeError(
                f"len(DataLoader) is unknown: {name} has no __len__. Define __len__ on the dataset "
                "(a map-style dataset needs it to be sampled)"
            )
        return TypeError(
            f"len(DataLoader) is unknown: len() of the dataset ({name}) raised TypeError: {error}. Make its "
            "__len__ return the number of samples as an int (a map-style dataset needs it to be sampled)"
        )
    passed, given = passed_sampler(b)
    lacking = _without_len(given)
    if lacking is None and isinstance(error, NoLengthError):
        lacking = given
    if lacking is None:
        counted = "batches" if passed == "batch_sampler" else "indices"
        return TypeError(
            f"len(DataLoader) is unknown: len() of your {passed} ({type(given).__name__}) raised TypeError: "
            f"{error}. Make its __len__ return the number of {counted} as an int, or iterate without len()"
        )
    takes = "" if lacking is given else f" takes its length from {type(lacking).__name__}, which"
    return TypeError(
        f"len(DataLoader) is unknown: your {passed} ({type(given).__name__}){takes} has no __len__. Give it "
        "a __len__ (a list or a Sampler instead of a generator), or iterate without len()"
    )
