"""Knowing that a file is still the one that was checked: checksums, stat stamps, records.

Three tools, from cheapest to strongest:

- :class:`FileStamp`: a file's inode, size, modification and change times (one ``stat``). Any
  write, truncation, replacement, ``chmod`` or ``touch`` through the filesystem gives a new stamp
  (the change time cannot be set by user code). A stamp is *trusted* only when it was taken after
  the filesystem clock had moved past the file's last change (:func:`stamp_is_settled`), the
  "racy git" problem and its answer (git's Documentation/technical/racy-git.txt): a write in the
  same clock tick as the check would otherwise leave the stamp unchanged.
- CRC-32 (:func:`file_crc32`, zlib's; about 7 GB/s here): detects every error burst up to 32 bits
  and random corruption with probability 1 - 2**-32; used for the library's own caches.
- SHA-256 (:class:`FileRecord`): for files that come from elsewhere (extracted dataset files).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinytorch.data.storage.atomic import atomic_write, named_os_error
from tinytorch.data.storage.regular_files import open_regular, read_text

__all__ = [
    "CorruptDatasetError",
    "FileRecord",
    "FileStamp",
    "file_crc32",
    "read_records",
    "sha256_hex",
    "stamp_is_settled",
    "write_records",
]

CHUNK = 1 << 22


class CorruptDatasetError(ValueError):
    """A dataset file is missing a part, malformed, or differs from its recorded checksum.

    Attributes:
        path: the file, when one is to blame (``None`` otherwise).
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)

    def __reduce__(self) -> tuple[Any, ...]:  # keyword attributes survive pickling (workers)
        return _rebuild, (type(self), str(self), self.__dict__)


def _rebuild(cls: type[BaseException], message: str, state: dict[str, Any]) -> BaseException:
    error = cls.__new__(cls)
    BaseException.__init__(error, message)
    error.__dict__.update(state)
    return error


@dataclass(frozen=True)
class FileStamp:
    """What one ``stat`` says about a file's identity: any change through the filesystem changes it."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileStamp:
        """The stamp of ``path`` now.

        Raises:
            OSError: ``path`` cannot be stat'ed (names it).
        """
        st = os.stat(path)
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def to_json(self) -> list[int]:
        return [self.inode, self.size, self.mtime_ns, self.ctime_ns]

    @classmethod
    def from_json(cls, value: Any) -> FileStamp | None:
        """The stamp ``to_json`` wrote, or ``None`` for anything else."""
        if isinstance(value, list) and len(value) == 4 and all(type(v) is int for v in value):
            return cls(*value)
        return None


def stamp_is_settled(stamp: FileStamp, clock_ns: int) -> bool:
    """Whether a later change to the file would be sure to change ``stamp``.

    ``clock_ns`` is the filesystem's clock read *before* the file's contents were checked (the
    change time of a file created just then, on the same filesystem: same clock, same
    granularity, no skew with a network server). A write after the check gets a change time
    ``>= clock_ns``; it shows in the stamp only if the stamp's own change time is older.
    """
    return stamp.ctime_ns < clock_ns


def file_crc32(path: str | os.PathLike[str]) -> int:
    """CRC-32 of a file's bytes, read in chunks.

    Raises:
        OSError: the file cannot be read (names it).
    """
    crc = 0
    with os.fdopen(open_regular(path), "rb") as f:
        try:
            while block := f.read(CHUNK):
                crc = zlib.crc32(block, crc)
        except OSError as e:  # e.g. EIO: read errors name no file
            raise named_os_error(e, path, "read") from e
    return crc


def sha256_hex(data: bytes | memoryview) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileRecord:
    """A file's size and SHA-256, recorded from a verified source."""

    size: int
    sha256: str

    @classmethod
    def of(cls, data: bytes | memoryview) -> FileRecord:
        return cls(len(data), sha256_hex(data))

    def describe_mismatch(self, data: bytes | memoryview) -> str | None:
        """Why ``data`` is not the recorded file, or ``None`` when it is."""
        if len(data) != self.size:
            return f"has {len(data):,} bytes, expected {self.size:,}"
        digest = sha256_hex(data)
        if digest != self.sha256:
            return f"has sha256 {digest}, expected {self.sha256}"
        return None


def read_records(path: Path) -> tuple[dict[str, FileRecord], dict[str, Any]] | None:
    """``(records, info)`` written by :func:`write_records`, or ``None`` if absent or unreadable.

    An unreadable record (another format, a damaged file) is as good as none: the caller
    records again from a verified source.
    """
    try:
        doc = json.loads(read_text(path))
        records = {
            name: FileRecord(int(entry["size"]), str(entry["sha256"])) for name, entry in doc["files"].items()
        }
        info = dict(doc["info"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return records, info


def write_records(path: Path, records: Mapping[str, FileRecord], info: Mapping[str, Any]) -> None:
    """Write per-file records and where they came from (``info``) to ``path`` atomically.

    Raises:
        OSError: the file cannot be written (names it).
    """
    doc = {
        "info": dict(info),
        "files": {name: {"size": r.size, "sha256": r.sha256} for name, r in sorted(records.items())},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(json.dumps(doc, indent=1).encode())
