"""Shard files against their manifest: opening, sizes, identity, end offsets and checksums.

Every check a reader makes of a shard file lives here, and :func:`verify_shards` (behind
``tinytorch-data verify``) makes the same ones, plus the full checksums and every end offset.
What is checked when:

* **open** (:func:`open_shard`): a regular file, of the manifest's size, the same file (device,
  inode, modification time) as when the dataset was opened; the data length of each
  variable-size field (its last end offset), so the layout check is exact.
* **first read** (:func:`check_checksum`): the whole file's CRC-32 or SHA-256.
* **every batch** (:func:`check_size`): the open file still has its size, so a shard truncated
  while in use is an error instead of a crash (``SIGBUS``).
* **on demand** (:func:`check_unchanged`): size and modification time of the open file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.storage.regular_files import NotRegularFileError, describe_mode, open_regular
from tinytorch.data.storage.shards import (
    MANIFEST,
    CorruptShardError,
    Manifest,
    ShardInfo,
    check_layout,
    read_manifest,
)

__all__ = [
    "CHECKSUMS",
    "Identity",
    "check_checksum",
    "check_ends",
    "check_path",
    "check_size",
    "check_text",
    "check_unchanged",
    "checksum_algorithm",
    "data_lengths",
    "identity_of",
    "open_shard",
    "stat_shard",
    "verify_shards",
]

CHECKSUMS = ("crc32", "sha256")
_BLOCK = 4 << 20
_REOPEN = "reopen ShardedDataset(...) once it is complete, or rewrite the dataset"
_REPLACED = "It was replaced or modified after the dataset was opened: " + _REOPEN
_IN_USE = "It was truncated or rewritten while in use: " + _REOPEN


class Identity(NamedTuple):
    """Which file a path named when it was checked: a changed one is another file or new content."""

    device: int
    inode: int
    size: int
    mtime_ns: int


def identity_of(st: os.stat_result) -> Identity:
    return Identity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _check_stat(path: Path, info: ShardInfo, st: os.stat_result, opened: Identity | None) -> Identity:
    if not stat.S_ISREG(st.st_mode):
        raise CorruptShardError(path, "file type", "a regular file", describe_mode(st.st_mode))
    if st.st_size != info.nbytes:
        raise CorruptShardError(
            path,
            "size",
            f"{info.nbytes} bytes (the manifest's 'bytes')",
            f"{st.st_size} bytes: the file is truncated or was replaced",
        )
    now = identity_of(st)
    if opened is not None and now != opened:
        raise CorruptShardError(
            path, "identity (device, inode, size, mtime)", str(opened), str(now), _REPLACED
        )
    return now


def stat_shard(directory: Path, info: ShardInfo, opened: Identity | None = None) -> Identity:
    """Check the file of ``info`` by its path: a regular file of the manifest's size (and, given
    ``opened``, still that file). Returns its identity.

    Raises:
        CorruptShardError: missing, not a regular file, another size, or another file.
    """
    path = directory / info.file
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CorruptShardError(
            path, "file", f"a shard of {info.nbytes} bytes (listed in {MANIFEST})", "missing"
        ) from None
    return _check_stat(path, info, st, opened)


def open_shard(directory: Path, info: ShardInfo, opened: Identity | None) -> tuple[int, Identity]:
    """Open the file of ``info`` read-only and check it (as :func:`stat_shard`, on the open file).

    Opened with :func:`~tinytorch.data.storage.regular_files.open_regular`: anything but a
    regular file (a FIFO or device named like a shard) is refused before it is opened.

    Returns:
        ``(fd, identity)``; the caller owns ``fd``.
    """
    path = directory / info.file
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        raise CorruptShardError(
            path, "file", f"a shard of {info.nbytes} bytes (listed in {MANIFEST})", "missing"
        ) from None
    except NotRegularFileError as e:
        raise CorruptShardError(path, "file type", "a regular file", e.kind) from e
    try:
        return fd, _check_stat(path, info, os.fstat(fd), opened)
    except BaseException:
        os.close(fd)
        raise


def _resized(path: Path, size: int, now: int) -> CorruptShardError:
    return CorruptShardError(path, "size", f"{size} bytes (as when it was opened)", f"{now} bytes", _IN_USE)


def check_size(fd: int, path: Path, size: int) -> None:
    """Check that the open file ``fd`` still has ``size`` bytes: made before each batch reads
    from a mapped shard, since reading a mapping past the end of its file is a ``SIGBUS``.

    One ``lseek`` (~0.3 us from Python; ``fstat`` costs ~1.5 us, most of it building the result).

    Raises:
        CorruptShardError: it shrank or grew since it was opened.
    """
    now = os.lseek(fd, 0, os.SEEK_END)
    if now != size:
        raise _resized(path, size, now)


def check_path(path: Path, opened: Identity) -> None:
    """:func:`check_size` by path, for a reader that keeps no descriptor (one ``stat``, ~1.5 us).

    A file still under its name (same device and inode) must have its size; one replaced or
    removed is another file, and the one mapped stays whole.

    Raises:
        CorruptShardError: the file opened shrank or grew.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if (st.st_dev, st.st_ino) == (opened.device, opened.inode) and st.st_size != opened.size:
        raise _resized(path, opened.size, st.st_size)


def check_unchanged(fd: int, path: Path, opened: Identity) -> None:
    """Check that the open file ``fd`` still has the size and modification time it was opened
    with (one ``fstat``).

    Raises:
        CorruptShardError: it shrank, grew or was written to since.
    """
    st = os.fstat(fd)
    if st.st_size != opened.size or st.st_mtime_ns != opened.mtime_ns:
        found = f"{st.st_size} bytes, modified at {st.st_mtime_ns} ns"
        raise CorruptShardError(
            path,
            "size and modification time",
            f"{opened.size} bytes, modified at {opened.mtime_ns} ns (as when it was opened)",
            found,
            _IN_USE,
        )


def _read_exact(fd: int, size: int, offset: int, path: Path, what: str) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise CorruptShardError(path, f"{what} at byte {offset}", f"{size} bytes", f"{len(data)} bytes")
    return data


def data_lengths(fd: int, path: Path, manifest: Manifest, k: int) -> dict[str, int]:
    """Each variable-size field's data length in shard ``k`` (its last end offset), read from the
    file (8 bytes per field), checked to fit before the next region.

    Raises:
        CorruptShardError: a length that does not fit (the exact layout is checked next).
    """
    info = manifest.shards[k]
    lengths = {}
    for field in manifest.fields:
        if field.kind == "array":
            continue
        where = info.offsets[field.name] + 8 * info.samples
        raw = _read_exact(fd, 8, where, path, f"field {field.name!r}'s last end offset")
        length = int(np.frombuffer(raw, dtype="<i8")[0])
        if length < 0:
            raise CorruptShardError(
                path, f"field {field.name!r}'s last end offset", "a non-negative int", str(length)
            )
        lengths[field.name] = length
    check_layout(path, k, info, manifest.fields, lengths)
    return lengths


def check_ends(ends: NDArray[np.int64], length: int, path: Path, name: str) -> None:
    """Check one variable-size field's ``(n + 1,)`` end offsets: from 0 to ``length``, never
    decreasing (vectorized).

    Raises:
        CorruptShardError: naming the first bad entry.
    """
    bad = np.flatnonzero(np.diff(ends) < 0)
    if len(ends) and ends[0] != 0:
        raise CorruptShardError(path, f"field {name!r}'s end offset 0", "0", str(int(ends[0])))
    if len(bad):
        i = int(bad[0]) + 1
        raise CorruptShardError(
            path, f"field {name!r}'s end offset {i}", f"at least {int(ends[i - 1])}", str(int(ends[i]))
        )
    if len(ends) and ends[-1] != length:
        raise CorruptShardError(path, f"field {name!r}'s last end offset", str(length), str(int(ends[-1])))


def check_text(data: bytes, ends: NDArray[np.int64], path: Path, name: str) -> None:
    """Check that every value of a ``str`` field is UTF-8, as a read decodes it: the values
    together decode, and no value starts inside a character (a continuation byte, ``10xxxxxx``,
    at a value's start; vectorized over the ``(n + 1,)`` checked end offsets).

    Raises:
        CorruptShardError: naming the field and the first sample (within the shard) that is not.
    """
    try:
        data.decode()
    except UnicodeDecodeError as e:
        sample = int(np.searchsorted(ends, e.start, side="right")) - 1
        raise CorruptShardError(
            path, f"field {name!r} sample {sample}", "UTF-8 text", f"undecodable bytes ({e.reason})"
        ) from e
    starts = ends[:-1]
    inside = starts[starts < len(data)]
    split = np.flatnonzero(np.frombuffer(data, np.uint8)[inside] & 0xC0 == 0x80)
    if len(split):
        sample = int(np.flatnonzero(starts == inside[split[0]])[-1])
        raise CorruptShardError(
            path, f"field {name!r} sample {sample}", "UTF-8 text", "a value starting inside a character"
        )


def _digests(fd: int, path: Path, info: ShardInfo, algorithms: tuple[str, ...]) -> dict[str, str | int]:
    """The checksums of the whole file (read with ``pread`` into one reused buffer)."""
    sha = hashlib.sha256() if "sha256" in algorithms else None
    crc = 0
    buffer = bytearray(min(_BLOCK, max(1, info.nbytes)))
    view = memoryview(buffer)
    position = 0
    while position < info.nbytes:
        want = min(len(buffer), info.nbytes - position)
        if hasattr(os, "preadv"):  # into the one buffer
            got = os.preadv(fd, [view[:want]], position)
        else:
            block = os.pread(fd, want, position)
            got = len(block)
            view[:got] = block
        if got == 0:
            raise CorruptShardError(path, "size", f"{info.nbytes} bytes", f"{position} bytes (read)")
        if sha is not None:
            sha.update(view[:got])
        if "crc32" in algorithms:
            crc = zlib.crc32(view[:got], crc)
        position += got
    out: dict[str, str | int] = {}
    if sha is not None:
        out["sha256"] = sha.hexdigest()
    if "crc32" in algorithms:
        out["crc32"] = crc
    return out


def checksum_algorithm(info: ShardInfo, mode: str) -> str:
    """The checksum that ``mode`` (``"crc32"`` or ``"sha256"``) checks for this shard: CRC-32
    falls back to SHA-256 for manifests written before CRC-32 was recorded."""
    return "sha256" if mode == "sha256" or info.crc32 is None else "crc32"


def check_checksum(fd: int, path: Path, info: ShardInfo, mode: str) -> None:
    """Check the whole file against the manifest's checksum for ``mode`` (see
    :func:`checksum_algorithm`); reads the file once.

    Raises:
        CorruptShardError: the checksum differs (the file is corrupt) or the file is short.
    """
    algorithm = checksum_algorithm(info, mode)
    got = _digests(fd, path, info, (algorithm,))[algorithm]
    want = info.sha256 if algorithm == "sha256" else info.crc32
    if got != want:
        raise CorruptShardError(path, algorithm, f"{want} (the manifest's)", f"{got}: the file is corrupt")


def verify_shards(
    directory: str | os.PathLike[str], *, progress: Callable[[int, int], None] | None = None
) -> Manifest:
    """Check a shard dataset in full; what ``tinytorch-data verify`` runs.

    The manifest (its shape, types and every number, as at open), then per shard: the file (a
    regular file of the manifest's size), the exact layout, every end offset of every
    variable-size field, every value of every ``str`` field decoded as UTF-8 (as a read does),
    and the SHA-256 and CRC-32 of the whole file. Reads all the data once (``str`` values twice).

    Args:
        directory: the dataset directory.
        progress: called with ``(bytes done, bytes in all)`` after each shard.

    Returns:
        The manifest.

    Raises:
        ShardError: no manifest, or another format version.
        CorruptShardError: the first problem found, naming the file and the field.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    total = sum(s.nbytes for s in manifest.shards)
    done = 0
    for k, info in enumerate(manifest.shards):
        fd, _ = open_shard(root, info, None)
        path = root / info.file
        try:
            lengths = data_lengths(fd, path, manifest, k)
            for field in manifest.fields:
                if field.kind != "array":
                    start = info.offsets[field.name]
                    raw = _read_exact(
                        fd, 8 * (info.samples + 1), start, path, f"field {field.name!r}'s end offsets"
                    )
                    ends = np.frombuffer(raw, dtype="<i8")
                    check_ends(ends, lengths[field.name], path, field.name)
                    if field.kind == "str":  # what a read decodes, decoded here
                        where = info.offsets[field.name + ".data"]
                        data = _read_exact(
                            fd, lengths[field.name], where, path, f"field {field.name!r}'s values"
                        )
                        check_text(data, ends, path, field.name)
            digests = _digests(fd, path, info, CHECKSUMS if info.crc32 is not None else ("sha256",))
        finally:
            os.close(fd)
        for algorithm, got in digests.items():
            want = info.sha256 if algorithm == "sha256" else info.crc32
            if got != want:
                raise CorruptShardError(
                    path, algorithm, f"{want} (the manifest's)", f"{got}: the file is corrupt"
                )
        done += info.nbytes
        if progress is not None:
            progress(done, total)
    return manifest
