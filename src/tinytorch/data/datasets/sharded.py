"""Sharded datasets larger than RAM: ``write_shards``, ``ShardedDataset`` and the windowed shuffle.

``ShardedDataset`` reads through memory maps: the operating system's page cache is the cache,
shared by every worker process and not charged to any of them, so memory does not grow with
the dataset. On Linux all shards are mapped back to back in one span and a batch is one gather
per field; elsewhere a batch is one gather per field per shard it touches
(:mod:`tinytorch.data.storage.shard_readers`).

For data much larger than RAM, ``WindowedShuffleSampler`` (sampling stage) gives a streaming order: shards
in a random order, grouped in windows of ``window`` consecutive shards, samples shuffled
within each window. At most ``window`` shards are in use at any time, reads stay mostly
sequential, and the order is a pure function of ``(seed, epoch)``, the same for any number of
workers. With ``max_open_shards`` the dataset keeps that many shards in use: a shard entering
is read in whole if it is not in the page cache, one leaving is unmapped from the process, and
the sampler has the next window's shards read in the background (:meth:`ShardedDataset.read_ahead`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.base import Dataset, IterableDataset, has_len, read_batch
from tinytorch.data.datasets.indexing import check_index, check_indices
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.storage.shard_checks import Verifier, resolve_verify
from tinytorch.data.storage.shard_files import stat_shard, verify_shards
from tinytorch.data.storage.shard_index import ShardIndex
from tinytorch.data.storage.shard_readers import open_reader
from tinytorch.data.storage.shard_writer import ShardWriter, replacing_directory
from tinytorch.data.storage.shards import Manifest, read_manifest
from tinytorch.data.validate import check_bool, check_int

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
    metadata: Mapping[str, Any] | None = None,
) -> Manifest:
    """Write the samples of ``source`` as shard files plus a manifest in ``directory``.

    Samples are tuples, dicts or single values; the first sample fixes the fields (a tuple's
    positions ``"0"``, ``"1"``, ...; a dict's keys), and every sample must have the same ones.
    A field's kind is decided by the first sample's value:

    * a numpy array or number (int, float, bool, numpy scalar): a fixed-shape ``array`` field,
      stored as one ``(n, *shape)`` array per shard; every sample must have the same shape and
      dtype (``int`` becomes int64, ``float`` float64). Reads give ``(batch, *shape)`` arrays.
    * ``bytes``: a variable-length ``bytes`` field, stored as it is (e.g. a JPEG or PNG file's
      bytes: ``Path(f).read_bytes()``), ``len`` may differ per sample and be 0. Reads give
      ``bytes`` objects (copies, independent of the files), one per sample; ``default_collate``
      makes a batch of them a list. Decode them in a transform or dataset wrapper.
    * ``str``: variable-length text, stored as UTF-8; reads give ``str``.

    Example (a folder of images as a few large files)::

        write_shards(((p.read_bytes(), label) for p, label in files), "images-shards")

    A new dataset is written into a temporary sibling directory and takes ``directory``'s place
    only when complete (every file flushed to disk, the manifest last), so an interrupted or
    failed write leaves no dataset and no temporary files (a killed process leaves its
    temporary directory, which the next write warns about), and ``overwrite=True`` replaces an
    existing dataset only once the new one is complete (the old one is then removed: only its
    ``manifest.json``, one this library wrote, and the shard files that lists; a directory
    holding anything else, even files named like shards, is refused before anything is
    written). A ``directory`` that is a symlink is written through: the dataset replaces the
    directory it points to, and the link stays.

    What a reader would refuse is refused here, at the first sample, naming the field (the
    format's rules, :func:`~tinytorch.data.storage.shards.field_problem`): a sample with no
    fields, an array of more than 32 dimensions, object or string dtypes, structured dtypes
    (their field names are not stored), and dict keys that are not ``str``.

    Args:
        source: a map-style dataset (read in batches of 1024) or any iterable of samples.
        directory: a new or empty directory, or (with ``overwrite``) a shard dataset.
        samples_per_shard / bytes_per_shard: when a shard is full (default 64 MiB).
        overwrite: replace a shard dataset already in ``directory``.
        progress: a tqdm bar; ``None`` shows it when stderr is a terminal.
        metadata: a JSON object about the whole dataset (e.g. ``{"classes": [...]}``), stored
            in the manifest (covered by its checksum) and read back as
            :attr:`ShardedDataset.metadata`.

    Returns:
        The manifest written.

    Raises:
        FileExistsError: ``directory`` holds a shard dataset and not ``overwrite``, or files
            this library did not write (they are never deleted).
        ValueError, TypeError: a sample whose fields differ from the first sample's, or a value
            that cannot be stored or read back (see above); the message names the sample and
            the field.
            ``metadata`` that is not a JSON object (a dict with str keys and JSON values).
        OSError: writing failed (e.g. the disk is full); the message names the file, and
            ``directory`` is unchanged.
    """
    from tqdm import tqdm

    target = Path(directory)
    if samples_per_shard is None and bytes_per_shard is None:
        bytes_per_shard = 64 << 20
    if samples_per_shard is not None:
        samples_per_shard = check_int(samples_per_shard, "samples_per_shard", minimum=1)
    if bytes_per_shard is not None:
        bytes_per_shard = check_int(bytes_per_shard, "bytes_per_shard", minimum=1)
    overwrite = check_bool(overwrite, "overwrite")
    metadata = _check_metadata(metadata)
    show = sys.stderr.isatty() if progress is None else check_bool(progress, "progress")
    total = len(source) if has_len(source) else None  # type: ignore[arg-type]
    with replacing_directory(target, overwrite=overwrite) as temporary:
        writer = ShardWriter(
            temporary,
            samples_per_shard=samples_per_shard,
            bytes_per_shard=bytes_per_shard,
            metadata=metadata,
        )
        try:
            bar = tqdm(
                _samples(source), total=total, desc=f"writing {target.name}", unit="sample", disable=not show
            )
            for sample in bar:
                writer.add(sample)
            return writer.close()
        except OSError as e:
            if writer.writing is None:
                raise
            raise OSError(
                e.errno,
                f"could not write {writer.writing.name} of {target} ({e.strerror or e}); {target} is "
                "unchanged and the partial copy was removed",
                str(writer.writing),
            ) from e


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """``metadata`` as a plain dict, checked to survive a JSON round trip unchanged."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise TypeError(f"metadata must be a dict with str keys, got {type(metadata).__name__}")
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"metadata must hold JSON values only (str, int, float, bool, None, lists, dicts): {e}"
        ) from e
    plain: dict[str, Any] = json.loads(text)
    return plain


class ShardedDataset(Dataset[Any]):
    """A map-style dataset over a shard directory written by :func:`write_shards`.

    Args:
        directory: the shard directory.
        verify: what is checked of each shard's content before its first read (see below):
            ``"crc32"`` (default), ``"sha256"`` or ``"size"``; ``True`` / ``False`` mean
            ``"sha256"`` / ``"size"``.
        max_open_shards: how many shards this process keeps in use at once. A shard enters use
            when a batch first reads from it, and is then read in whole unless it is in the page
            cache; beyond ``max_open_shards``, the shard that entered earliest leaves (streaming
            windows move forward) and this process drops its pages (they stay in the page
            cache). The setting for streaming with :class:`WindowedShuffleSampler`: at least
            twice its window, since batches in flight near a window's end read from two.
            ``None`` (default): shards never leave, and only the pages a batch touches are read
            (the setting for random access; the mappings cost address space, not memory).

    What is checked when (a manifest and its shard files are untrusted input: no number from
    them is used before it is checked, and a bad one is a :class:`CorruptShardError` naming the
    file and the field, never a crash):

    * **When the dataset is created**: the manifest's own checksum (any edit or bit flip of it is
      refused), its shape, types and every number (sample counts, offsets, shapes, dtypes,
      sizes) against each other and the format's layout rule; file names are plain names inside
      ``directory``; every shard file exists, is a regular file and has the manifest's size.
    * **When a process opens the shards** (at creation, and in a spawned worker on its first
      read): the same files again (same device, inode, size and modification time as when the
      dataset was created), and the exact layout of variable-size fields (8 bytes read each).
    * **Before a shard's first read** (once per dataset object: forked workers share the
      results, a spawned worker checks again): its whole file's CRC-32 (``verify="crc32"``;
      SHA-256 for manifests written without a CRC-32) or SHA-256 (``"sha256"``, about three
      times slower: docs/benchmarks.md), one pass over the shard. ``"size"`` skips this (for
      data already checked with ``tinytorch-data verify``). With
      :class:`WindowedShuffleSampler` the next window is checked in the background as it is
      read ahead.
    * **Before every batch**: each shard the batch reads still has its size (one ``lseek`` per
      shard touched; a ``stat`` by path for datasets with more shards than a quarter of the
      open-file limit, whose files are not kept open): a shard truncated while an epoch runs is
      an error naming it instead of a ``SIGBUS``. The end offsets of variable-size fields a
      batch reads are checked against their shard's bounds. A file truncated in the
      microseconds between this check and the copy can still raise ``SIGBUS``;
      :meth:`check_mapped_files` names it afterwards.
    * **On** :meth:`verify` (``tinytorch-data verify``): all of the above plus every end offset
      and the SHA-256 and CRC-32 of every shard.

    Samples have the structure they were written with (tuple, dict or single array); ``bytes``
    and ``str`` fields come back as ``bytes`` and ``str`` objects, arrays as numpy arrays.
    ``len()`` is exact. :meth:`close` releases the mappings and files (the next read opens them
    again); they are also released when the dataset is garbage-collected.

    Raises:
        ShardError: no manifest (an unfinished write), or another format version.
        CorruptShardError: see above.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        verify: str | bool = "crc32",
        max_open_shards: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.verify_mode = resolve_verify(verify)
        self.max_open_shards = (
            None if max_open_shards is None else check_int(max_open_shards, "max_open_shards", minimum=1)
        )
        self.manifest = read_manifest(self.directory)
        self.index = ShardIndex([s.samples for s in self.manifest.shards])
        identities = [stat_shard(self.directory, info) for info in self.manifest.shards]
        verifier = Verifier(self.directory, self.manifest, self.verify_mode)
        self._reader = open_reader(self.directory, self.manifest, identities, verifier, self.max_open_shards)

    @property
    def shard_starts(self) -> NDArray[np.int64]:
        """``(num_shards + 1,)`` int64: first sample index of each shard, then ``len(self)``."""
        return self.index.starts

    uses_global_rngs = False
    """Reads draw no random numbers (see :func:`tinytorch.data.seeding.draws_from_global_rngs`)."""

    def __len__(self) -> int:
        return self.index.total

    @property
    def num_shards(self) -> int:
        return len(self.manifest.shards)

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The ``metadata`` given to :func:`write_shards` (``{}`` when none)."""
        return self.manifest.metadata

    @property
    def opened(self) -> int:
        """How many times a shard entered use in this process (see ``max_open_shards``)."""
        return self._reader.entries

    def open_shards(self) -> list[int]:
        """Indices of the shards in use in this process (see ``max_open_shards``), earliest first."""
        return self._reader.in_use()

    def verify(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Check the whole dataset: what :func:`~tinytorch.data.storage.shard_files.verify_shards`
        checks (every number, every end offset, each shard's SHA-256 and CRC-32; reads all the
        data), and that the files are those this dataset opened.

        Args:
            progress: called with ``(bytes done, bytes in all)`` after each shard.

        Raises:
            CorruptShardError: the first problem, naming the file and the field.
        """
        verify_shards(self.directory, progress=progress)
        self.check_mapped_files()

    def check_mapped_files(self) -> None:
        """Check that every shard file still has the size and identity (device, inode,
        modification time) it had when this dataset opened it: the files this process maps by
        their open descriptors, and every shard by its path. One ``stat`` per shard.

        Use it to name the cause of a ``SIGBUS`` (a mapped file that shrank) after the fact,
        e.g. when a worker process died of one.

        Raises:
            CorruptShardError: naming the first file that changed, with its old and new size.
        """
        self._reader.check_files()

    def close(self) -> None:
        """Release this process's mappings and open files now (reads after it open them again)."""
        self._reader.close()

    def read_ahead(self, shards: Sequence[int]) -> Any:
        """Start reading ``shards`` into the page cache in a background thread (checking their
        checksums on the way, unless ``verify="size"``).

        Called by :class:`WindowedShuffleSampler` with the next window's shards. Shards already
        cached are skipped; the data is read in whole (2 MiB folios) and this process keeps no
        mapping of it unless its own reads use the shard. Returns the thread (``None`` when
        nothing is read ahead: no shards, or shards mapped one by one (not Linux)).
        """
        wanted = [check_index(k, self.num_shards, owner="ShardedDataset.read_ahead") for k in shards]
        return self._reader.read_ahead(wanted)

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
        shards, rows = self.index.locate(idx)
        return self._wrap(self._reader.read(shards, rows))

    def __getitem__(self, index: int) -> Any:
        i = check_index(index, len(self), owner="ShardedDataset")
        sample = self.__getitems__(np.array([i]))[0]
        if self.manifest.structure == "array" and isinstance(sample, tuple):
            return sample[0]
        return sample

    def __repr__(self) -> str:
        return f"ShardedDataset({str(self.directory)!r}, {len(self)} samples in {self.num_shards} shards)"
