"""A verified, memory-mappable cache of named numpy arrays in one directory.

Layout: ``<dir>/<name>.npy`` for each array and ``<dir>/manifest.json``, written last. Each file is
written with :func:`~tinytorch.data.storage.atomic.atomic_write` (temporary sibling, fsync,
rename), so a failed or interrupted save leaves every previous file whole; the manifest, renamed
last, commits the new arrays (after a crash between the renames the sizes or checksums disagree and
the cache is rebuilt).

What :func:`load_arrays` checks, and when:

- every open: the manifest's format version and *source* (a description of the files the cache
  was built from) match the caller's, else the cache is stale (``None``); each array file's size,
  ``.npy`` header (dtype, shape, C order) and data length match the manifest;
- the CRC-32 of each array file (recorded from the bytes written) whenever the file's
  :class:`~tinytorch.data.storage.integrity.FileStamp` differs from the one recorded at its last
  verification: after the cache was written, or after anything wrote, truncated, replaced or
  touched the file (or a copy of the directory was made). A verified stamp is written back into
  the manifest, so the next open costs a ``stat`` instead of a full read; a stamp taken in the same
  clock tick as the file's last change is not recorded (a write in that tick would not change it),
  nor is anything in a read-only directory: those files are checked in full at every open.

A failed check raises :class:`~tinytorch.data.storage.integrity.CorruptDatasetError` naming the
file; the caller rebuilds the cache from its sources.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.storage.atomic import atomic_write
from tinytorch.data.storage.integrity import (
    CHUNK,
    CorruptDatasetError,
    FileStamp,
    stamp_is_settled,
)
from tinytorch.data.storage.regular_files import open_regular, read_text

__all__ = ["CachedArrays", "MappedFile", "fingerprint", "load_arrays", "save_arrays"]

FORMAT_VERSION = 2
MANIFEST = "manifest.json"


def fingerprint(paths: list[Path]) -> dict[str, list[int]]:
    """Size and modification time (ns) of each source file: changes when a file is replaced.

    Raises:
        FileNotFoundError: a file is missing (names it).
    """
    stats = {p.name: p.stat() for p in paths}
    return {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()}


@dataclass(frozen=True)
class MappedFile:
    """A cache file memory-mapped by :func:`load_arrays`, and its size when it was mapped."""

    path: Path
    size: int
    _map: mmap.mmap = field(repr=False, compare=False)

    def check_size(self) -> None:
        """Raise if the mapped file's size changed since it was mapped.

        Reading a page of a mapping past the end of a truncated file kills the process with
        SIGBUS; this names the file instead. The size is that of the very file mapped (``fstat``
        of the mapping's descriptor), even if its path now names another file.

        Raises:
            CorruptDatasetError: the size changed; names the file and both sizes.
        """
        try:
            now = self._map.size()
        except (OSError, ValueError) as e:  # ValueError: the mapping was closed
            raise CorruptDatasetError(
                f"cannot stat the memory-mapped {self.path}: {e}", path=self.path
            ) from e
        if now != self.size:
            raise CorruptDatasetError(
                f"{self.path} changed size while memory-mapped: {self.size:,} bytes when mapped, "
                f"{now:,} now. Another program truncated or rewrote it in place (the library "
                "itself only ever replaces cache files by renaming). Construct the dataset again "
                "to rebuild and re-verify its cache",
                path=self.path,
            )


@dataclass(frozen=True)
class CachedArrays:
    """What :func:`load_arrays` returns.

    Attributes:
        arrays: read-only arrays viewing the memory-mapped files (the OS page cache holds them,
            shared by every process that maps them).
        meta: the ``meta`` saved with them.
        files: the mapped files, for :meth:`MappedFile.check_size`.
    """

    arrays: dict[str, NDArray[Any]]
    meta: dict[str, Any]
    files: tuple[MappedFile, ...]


class _Crc32Writer:
    """A write-only file wrapper that keeps the CRC-32 of everything written through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.crc = 0

    def write(self, data: bytes | memoryview) -> int:
        self.crc = zlib.crc32(data, self.crc)
        return self._f.write(data)


def save_arrays(
    directory: Path,
    arrays: dict[str, NDArray[Any]],
    source: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``arrays`` (and JSON-serializable ``meta``) to ``directory``, replacing its cache.

    Args:
        directory: created if missing. Files other than ``<name>.npy`` and the manifest are left
            alone.
        arrays: name -> array (any dtype without Python objects); saved C-contiguous.
        source: JSON-serializable description of what the arrays were made from; :func:`load_arrays`
            trusts the cache only for an equal ``source``.
        meta: JSON-serializable extra data returned by :func:`load_arrays`.

    Raises:
        OSError: a file could not be written (names it; callers may go on without a cache). The
            files already in ``directory`` are each either the old or the new version, never a
            partial one, and the old manifest still describes the old arrays until the new one is
            in place.
    """
    directory.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        path = directory / f"{name}.npy"
        with atomic_write(path) as f:
            out = _Crc32Writer(f)
            np.lib.format.write_array(out, array, allow_pickle=False)
            size = f.tell()
        entries[name] = {
            "shape": list(array.shape),
            "dtype": array.dtype.str,
            "bytes": size,
            "crc32": out.crc,
            "verified": None,
        }
    manifest = {"version": FORMAT_VERSION, "source": source, "arrays": entries, "meta": meta or {}}
    with atomic_write(directory / MANIFEST) as f:
        f.write(json.dumps(manifest, indent=1).encode())


def load_arrays(directory: Path, source: dict[str, Any]) -> CachedArrays | None:
    """Memory-map and verify the cached arrays (see the module docs for what is checked when).

    Returns:
        The arrays, or ``None`` when there is no cache or it was built by another format
        version or from another ``source`` (stale: rebuild it).

    Raises:
        CorruptDatasetError: the cache claims to match but a file is missing, has another size,
            header or checksum, or the manifest is damaged; names the file (rebuild the cache).
    """
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(read_text(manifest_path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise CorruptDatasetError(f"{manifest_path} cannot be read: {e}", path=manifest_path) from e
    if not isinstance(manifest, dict) or manifest.get("version") != FORMAT_VERSION:
        return None
    if manifest.get("source") != source:
        return None
    try:
        entries: dict[str, dict[str, Any]] = dict(manifest["arrays"])
        meta = dict(manifest["meta"])
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptDatasetError(
            f"{manifest_path} is damaged ({type(e).__name__}: {e})", path=manifest_path
        ) from e
    verifier = _Verifier(directory)
    arrays: dict[str, NDArray[Any]] = {}
    files: list[MappedFile] = []
    for name, entry in entries.items():
        array, mapped, stamp = _map_verified(directory / f"{name}.npy", entry, verifier)
        arrays[name] = array
        files.append(mapped)
        if stamp is not None:
            entry["verified"] = stamp.to_json()
    if verifier.record:
        # Later opens trust these stamps. Best effort: a read-only cache is verified every time.
        with contextlib.suppress(OSError), atomic_write(manifest_path) as f:
            f.write(json.dumps(manifest, indent=1).encode())
    return CachedArrays(arrays, meta, tuple(files))


class _Verifier:
    """Checks CRCs of files whose stamps changed; reads the filesystem clock once, first."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._read = False
        self._clock: int | None = None  # None after reading: unavailable (read-only directory)
        self.record = False

    def clock(self) -> int | None:
        """The filesystem's current time: the change time of a file created (and removed) now."""
        if not self._read:
            self._read = True
            try:
                fd, name = tempfile.mkstemp(prefix=".clock.", suffix=".tmp", dir=self._directory)
            except OSError:  # read-only: verify, but record nothing
                return None
            try:
                self._clock = os.fstat(fd).st_ctime_ns
            finally:
                os.close(fd)
                os.unlink(name)
        return self._clock

    def settled(self, stamp: FileStamp) -> FileStamp | None:
        clock = self.clock()
        if clock is not None and stamp_is_settled(stamp, clock):
            self.record = True
            return stamp
        return None


def _map_verified(
    path: Path, entry: dict[str, Any], verifier: _Verifier
) -> tuple[NDArray[Any], MappedFile, FileStamp | None]:
    """Open, check and map one array file; the stamp to record when it was verified now."""
    try:
        dtype = np.dtype(entry["dtype"])
        shape = tuple(int(d) for d in entry["shape"])
        expected_bytes = int(entry["bytes"])
        expected_crc = int(entry["crc32"])
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptDatasetError(f"the manifest entry of {path} is damaged ({e!r})", path=path) from e
    try:
        # Closed below; the mapping keeps its own descriptor. A regular file only: a FIFO in
        # its place would hang the open.
        f = os.fdopen(open_regular(path), "rb")
    except FileNotFoundError as e:
        raise CorruptDatasetError(f"{path} is missing from the cache", path=path) from e
    except OSError as e:
        raise CorruptDatasetError(f"{path} cannot be opened: {e}", path=path) from e
    with f:
        st = os.fstat(f.fileno())
        stamp = FileStamp(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if st.st_size != expected_bytes:
            raise CorruptDatasetError(
                f"{path} has {st.st_size:,} bytes, its manifest says {expected_bytes:,}: it was "
                "truncated or rewritten",
                path=path,
            )
        offset = _read_header(f, path, dtype, shape)
        if offset + dtype.itemsize * math.prod(shape) != st.st_size:
            raise CorruptDatasetError(f"{path}: the header and the file size disagree", path=path)
        recorded = FileStamp.from_json(entry.get("verified"))
        settled = None
        if recorded != stamp:
            verifier.clock()  # before reading the bytes: see stamp_is_settled
            try:
                crc = _crc32_from(f)
            except OSError as e:
                raise CorruptDatasetError(f"{path} cannot be read: {e}", path=path) from e
            if crc != expected_crc:
                raise CorruptDatasetError(
                    f"{path} has CRC-32 {crc:08x}, expected {expected_crc:08x}: its bytes changed "
                    "after it was written",
                    path=path,
                )
            settled = verifier.settled(stamp)
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise CorruptDatasetError(f"{path} cannot be memory-mapped: {e}", path=path) from e
    array = np.frombuffer(mapped, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape)
    return array, MappedFile(path, st.st_size, mapped), settled


def _read_header(f: IO[bytes], path: Path, dtype: np.dtype[Any], shape: tuple[int, ...]) -> int:
    """Check the ``.npy`` header against the manifest; the data's offset."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            header = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            header = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as e:
        raise CorruptDatasetError(f"{path} has no valid .npy header ({e})", path=path) from e
    found_shape, fortran_order, found_dtype = header
    if tuple(found_shape) != shape or found_dtype != dtype or fortran_order:
        raise CorruptDatasetError(
            f"{path} holds {found_dtype} {tuple(found_shape)}"
            f"{' (Fortran order)' if fortran_order else ''}, its manifest says {dtype} {shape}",
            path=path,
        )
    return f.tell()


def _crc32_from(f: IO[bytes]) -> int:
    f.seek(0)
    crc = 0
    while block := f.read(CHUNK):
        crc = zlib.crc32(block, crc)
    return crc
