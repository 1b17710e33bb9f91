"""Sharded datasets larger than RAM: ``write_shards``, ``ShardedDataset`` and the windowed shuffle.

``ShardedDataset`` reads through memory maps: the operating system's page cache is the cache,
shared by every worker process and not charged to any of them, so memory does not grow with
the dataset. When every field has a fixed size (Linux), all shards are mapped back to back in
one span and a batch is one gather per field; otherwise a batch is one gather per field per
shard it touches.

For data much larger than RAM, ``WindowedShuffleSampler`` (sampling stage) gives a streaming order: shards
in a random order, grouped in windows of ``window`` consecutive shards, samples shuffled
within each window. At most ``window`` shards are in use at any time, reads stay mostly
sequential, and the order is a pure function of ``(seed, epoch)``, the same for any number of
workers. With ``max_open_shards`` the dataset keeps that many shards in use: a shard entering
is read in whole if it is not in the page cache, one leaving is unmapped from the process, and
the sampler has the next window's shards read in the background (:meth:`ShardedDataset.read_ahead`).
"""

from __future__ import annotations

import math
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.base import Dataset, IterableDataset, read_batch
from tinytorch.data.datasets.indexing import check_index, check_indices
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.storage.shards import (
    MANIFEST,
    Field,
    Manifest,
    ShardFile,
    ShardWriter,
    check_shard,
    read_manifest,
)
from tinytorch.data.storage.span import ShardSpan, gather_records, record_rows, span_supported
from tinytorch.data.validate import check_int

__all__ = ["ShardedDataset", "write_shards"]


def _samples(source: Any) -> Iterator[Any]:
    if isinstance(source, Dataset) and not isinstance(source, IterableDataset):
        n = len(source)
        for start in range(0, n, 1024):
            yield from read_batch(source, np.arange(start, min(n, start + 1024)))
        return
    yield from source


def write_shards(
    source: Dataset[Any] | Iterable[Any],
    directory: str | os.PathLike[str],
    *,
    samples_per_shard: int | None = None,
    bytes_per_shard: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Manifest:
    """Write the samples of ``source`` as shards plus a manifest in ``directory``.

    Args:
        source: a map-style dataset (read in batches) or any iterable of samples; samples are
            tuples, dicts or single values of numpy arrays, numbers, ``bytes`` or ``str``.
        directory: created if needed; must not already hold a shard dataset unless
            ``overwrite``.
        samples_per_shard / bytes_per_shard: when a shard is full (default 64 MiB).
        progress: a tqdm bar; ``None`` shows it when stderr is a terminal.

    The manifest is written last, so an interrupted write leaves no manifest and is never
    mistaken for a dataset.
    """
    import sys

    from tqdm import tqdm

    target = Path(directory)
    if samples_per_shard is None and bytes_per_shard is None:
        bytes_per_shard = 64 << 20
    if samples_per_shard is not None:
        check_int(samples_per_shard, "samples_per_shard", minimum=1)
    if bytes_per_shard is not None:
        check_int(bytes_per_shard, "bytes_per_shard", minimum=1)
    if (target / MANIFEST).exists():
        if not overwrite:
            raise FileExistsError(
                f"{target} already holds a shard dataset; pass overwrite=True to replace it, or "
                "choose another directory"
            )
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(target, samples_per_shard=samples_per_shard, bytes_per_shard=bytes_per_shard)
    total = len(source) if hasattr(source, "__len__") else None  # type: ignore[arg-type]
    show = sys.stderr.isatty() if progress is None else progress
    for sample in tqdm(
        _samples(source),
        total=total,
        desc=f"writing {target.name}",
        unit="sample",
        disable=not show,
    ):
        writer.add(sample)
    return writer.close()


def _record_bytes(field: Field) -> int:
    return np.dtype(field.dtype).itemsize * math.prod(field.shape)


class _SpanField(NamedTuple):
    """Where one fixed-size field's records are in a :class:`ShardSpan`.

    With ``rows`` (the records of every shard lie on one grid): sample ``i`` of shard ``k`` is
    ``rows[bases[k] + i]``. Without: it starts at byte ``bases[k] + i * record`` of the span
    (``i`` counted over the whole dataset in both).
    """

    bases: NDArray[np.int64]
    record: int
    rows: NDArray[Any] | None


class ShardedDataset(Dataset[Any]):
    """A map-style dataset over a shard directory written by :func:`write_shards`.

    Args:
        directory: the shard directory.
        verify: check each shard's SHA-256 when it is first read.
        max_open_shards: keep at most this many shards mapped (the oldest are dropped:
            streaming windows move forward), and ask the kernel to read each shard ahead
            when it is first used if it is not in the page cache: the setting for streaming
            with :class:`WindowedShuffleSampler` (use at least twice its window, since two
            workers may read from consecutive windows). ``None`` keeps all
            shards mapped (virtual memory, not RAM) and reads only the pages a batch touches:
            the setting for random access.

    Samples have the structure they were written with (tuple, dict or single array); ``str``
    and ``bytes`` fields come back as Python objects, arrays as numpy arrays. ``len()`` is exact.

    Raises:
        ShardError: no manifest, an unknown format version, a missing or truncated shard (when
            it is opened), or a checksum mismatch (with ``verify``).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        verify: bool = False,
        max_open_shards: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self.verify_on_open = verify
        self.max_open_shards = (
            None if max_open_shards is None else check_int(max_open_shards, "max_open_shards", minimum=1)
        )
        counts = [s.samples for s in self.manifest.shards]
        self.shard_starts: NDArray[np.int64] = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        # Writers fill every shard but the last to the same count: then a sample's shard is a
        # division instead of a binary search.
        self._per_shard = counts[0] if counts and all(c == counts[0] for c in counts[:-1]) else 0
        self._open: OrderedDict[int, ShardFile] = OrderedDict()
        self._lock = threading.Lock()
        self.opened = 0  # how many times a shard was mapped (for tests and statistics)
        # Fixed-size fields are read through one span of all shards; in it, ``_in_use`` holds
        # the shards in use in the order they entered (at most max_open_shards; the earliest
        # entered is released first: windows move forward) and ``_verified`` those checksummed.
        fixed = all(f.kind == "array" for f in self.manifest.fields)
        self._use_span = fixed and span_supported()
        self._span: ShardSpan | None = None
        self._span_fields: dict[str, _SpanField] = {}
        self._in_use: OrderedDict[int, None] = OrderedDict()
        self._verified: set[int] = set()
        # Shards needing nothing before a read (in use, verified if asked): one vector check
        # per batch instead of per-shard bookkeeping.
        self._settled = np.zeros(self.num_shards, dtype=bool)

    def __len__(self) -> int:
        return int(self.shard_starts[-1])

    @property
    def num_shards(self) -> int:
        return len(self.manifest.shards)

    def verify(self) -> None:
        """Check every shard's size and SHA-256 against the manifest (reads all the data)."""
        for info in self.manifest.shards:
            check_shard(self.directory, info, checksum=True)

    def open_shards(self) -> list[int]:
        """Indices of the shards currently mapped (with ``max_open_shards``: in use), oldest first."""
        if self._span is not None:
            return list(self._in_use) if self.max_open_shards is not None else list(range(self.num_shards))
        return list(self._open)

    def _shard(self, k: int) -> ShardFile:
        with self._lock:  # thread workers share the dataset
            shard = self._open.get(k)
            if shard is not None:
                self._open.move_to_end(k)
                return shard
        opened = ShardFile(
            self.directory, self.manifest.shards[k], self.manifest.fields, verify=self.verify_on_open
        )
        with self._lock:
            shard = self._open.setdefault(k, opened)
            if shard is opened:
                self.opened += 1
            self._open.move_to_end(k)
            while self.max_open_shards is not None and len(self._open) > self.max_open_shards:
                self._open.popitem(last=False)
        return shard

    def _shard_span(self) -> ShardSpan | None:
        """All shards in one mapping (built on first use; sizes checked now, since reading past
        the end of a truncated file would be a bus error, and checksums on first use)."""
        with self._lock:
            if self._span is None and self._use_span:
                paths = [check_shard(self.directory, info, checksum=False) for info in self.manifest.shards]
                try:
                    records = tuple(_record_bytes(f) for f in self.manifest.fields)
                    span = ShardSpan(paths, [s.nbytes for s in self.manifest.shards], record_sizes=records)
                except OSError:
                    self._use_span = False  # read shard by shard instead
                else:
                    self._span_fields = self._field_bases(span)
                    self._span = span
            return self._span

    def _field_bases(self, span: ShardSpan) -> dict[str, _SpanField]:
        """How to find each field's records in the span (see :class:`_SpanField`)."""
        fields = {}
        for field in self.manifest.fields:
            dtype, record = np.dtype(field.dtype), _record_bytes(field)
            offsets = np.array([s.offsets[field.name] for s in self.manifest.shards], dtype=np.int64)
            first = span.starts + offsets  # byte of each shard's first record of this field
            rows = None
            if record and len(np.unique(first % record)) == 1:
                rows = record_rows(span.data, int(first[0] % record), dtype, tuple(field.shape))
            if rows is not None:
                bases = (first - first[0] % record) // record - self.shard_starts[:-1]
            else:
                bases = first - self.shard_starts[:-1] * record
            fields[field.name] = _SpanField(bases, record, rows)
        return fields

    def _shard_of(self, idx: NDArray[np.intp]) -> NDArray[np.intp]:
        """The shard holding each of samples ``idx``."""
        if self._per_shard:
            return np.minimum(idx // self._per_shard, self.num_shards - 1)
        return np.searchsorted(self.shard_starts, idx, side="right") - 1

    def _use(self, span: ShardSpan, shards: list[int]) -> None:
        """Note that ``shards`` are read now: verify the new ones if asked, and with
        ``max_open_shards`` read them ahead and release the earliest entered beyond it."""
        for k in shards:
            if self.verify_on_open and k not in self._verified:
                check_shard(self.directory, self.manifest.shards[k], checksum=True)
                self._verified.add(k)
        entered, left = [], []
        with self._lock:  # bookkeeping only: reading a shard in takes milliseconds
            for k in shards:
                if self.max_open_shards is not None and k not in self._in_use:
                    self._in_use[k] = None
                    self.opened += 1
                    entered.append(k)
                    while len(self._in_use) > self.max_open_shards:
                        left.append(self._in_use.popitem(last=False)[0])
            self._settled[shards] = True
            self._settled[left] = False  # may include shards of this very batch
        # Outside the lock, so other threads' reads of other shards go on meanwhile; a shard
        # released here while another thread enters it again is only faulted back in.
        for k in entered:
            span.prefetch(k)
        for k in left:
            span.release(k)

    def read_ahead(self, shards: Sequence[int]) -> threading.Thread | None:
        """Start reading ``shards`` into the page cache in a background thread.

        Called by :class:`WindowedShuffleSampler` with the next window's shards. Shards already
        cached are skipped; the data is read in whole (2 MiB folios) and this process keeps no
        mapping of it unless its own reads use the shard. Returns the thread (``None`` when the
        dataset does not read through a span, e.g. variable-size fields or not Linux).
        """
        span = self._shard_span() if self._use_span else None
        if span is None or not shards:
            return None
        wanted = [check_index(k, self.num_shards, owner="ShardedDataset.read_ahead") for k in shards]

        def read() -> None:
            # No lock here: a worker process forked while this thread held one would inherit
            # it locked. Racing a reader that starts using shard k only costs it page faults.
            for k in wanted:
                span.prefetch(k)
                if k not in self._in_use:
                    span.release(k)

        thread = threading.Thread(target=read, name="tinytorch-read-ahead", daemon=True)
        thread.start()
        return thread

    def _span_columns(self, span: ShardSpan, idx: NDArray[np.intp]) -> dict[str, Any]:
        """Every field of samples ``idx`` with one gather per field over the span."""
        which = self._shard_of(idx)
        if (self.max_open_shards is not None or self.verify_on_open) and not self._settled[which].all():
            self._use(span, np.unique(which).tolist())
        columns: dict[str, Any] = {}
        for field in self.manifest.fields:
            where = self._span_fields[field.name]
            if where.rows is not None:  # one take of whole rows
                columns[field.name] = np.take(where.rows, where.bases[which] + idx, axis=0)
                continue
            raw = gather_records(span.data, where.bases[which] + idx * where.record, where.record)
            columns[field.name] = raw.view(np.dtype(field.dtype)).reshape((len(idx), *field.shape))
        return columns

    def _columns(self, idx: NDArray[np.intp]) -> dict[str, Any]:
        """Every field of samples ``idx``: one gather per field per shard, written straight to
        the samples' positions in preallocated outputs."""
        span = self._shard_span() if self._use_span else None
        if span is not None:
            return self._span_columns(span, idx)
        which = self._shard_of(idx)
        order = np.argsort(which, kind="stable")
        sorted_which = which[order]
        boundaries = np.flatnonzero(np.diff(sorted_which)) + 1
        n = len(idx)
        columns: dict[str, Any] = {}
        for field in self.manifest.fields:
            if field.kind == "array":
                columns[field.name] = np.empty((n, *field.shape), dtype=np.dtype(field.dtype))
            else:
                columns[field.name] = [None] * n
        for positions in np.split(order, boundaries):
            if not len(positions):
                continue
            k = int(which[positions[0]])
            rows = (idx[positions] - self.shard_starts[k]).astype(np.intp)
            shard = self._shard(k)
            single = len(positions) == n  # one shard: gather straight into the output
            for field in self.manifest.fields:
                out = columns[field.name]
                if field.kind != "array":
                    for p, value in zip(positions.tolist(), shard.variable(field.name, rows), strict=True):
                        out[p] = value
                elif single and np.array_equal(positions, np.arange(n)):
                    np.take(shard.columns[field.name], rows, axis=0, out=out)
                else:
                    out[positions] = np.take(shard.columns[field.name], rows, axis=0)
        return columns

    def _wrap(self, columns: dict[str, Any]) -> StackedSamples:
        structure = self.manifest.structure
        if structure == "dict":
            return StackedSamples.of_dicts(columns)
        if structure == "tuple":
            return StackedSamples.of_tuples([columns[str(i)] for i in range(len(columns))])
        column = columns["0"]
        return (
            StackedSamples.of_arrays(column)
            if isinstance(column, np.ndarray)
            else StackedSamples.of_tuples([column])
        )

    def __getitems__(self, indices: Sequence[int] | NDArray[np.integer]) -> StackedSamples:
        idx = check_indices(indices, len(self), owner="ShardedDataset")
        return self._wrap(self._columns(idx))

    def __getitem__(self, index: int) -> Any:
        i = check_index(index, len(self), owner="ShardedDataset")
        sample = self.__getitems__(np.array([i]))[0]
        if self.manifest.structure == "array" and isinstance(sample, tuple):
            return sample[0]
        return sample

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()  # mappings are reopened in each process
        state["_span"] = None
        state["_span_fields"] = {}  # holds views of the span: never pickle those
        state["_in_use"] = OrderedDict()
        state["_settled"] = np.zeros(self.num_shards, dtype=bool)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ShardedDataset({str(self.directory)!r}, {len(self)} samples in {self.num_shards} shards)"
