"""Opening a user's file for reading: regular files only, checked before they are opened.

Every place the library reads a file it did not just write (shard files and manifests, image
files, CIFAR batch files and archives, array caches and their records) opens it with
:func:`open_regular` or :func:`read_regular`. A path is ``stat``-ed first, following symlinks,
and anything that is not a regular file is refused with :class:`NotRegularFileError` naming it
and what it is, before it is opened: opening a FIFO for reading blocks until a writer appears
(forever, in a data loader), and a character device such as ``/dev/zero`` never ends. The file
is then opened without blocking (``O_NONBLOCK``: should the path have been replaced by a FIFO
since the ``stat``, the open returns at once) and checked again on the open descriptor (the same
file as the one stat-ed, and still regular), so what is read is the file that was checked.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = [
    "NotRegularFileError",
    "check_regular",
    "describe_mode",
    "open_regular",
    "read_regular",
    "read_text",
]

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFileError(OSError):
    """A path names a directory, FIFO, device or socket where a regular file is expected.

    An ``OSError`` (``errno`` ``EISDIR`` for a directory, ``EINVAL`` otherwise) whose
    ``filename`` is the path; the message says what the path is. Refused before it is opened.

    Attributes:
        kind: what the path is, in words (:func:`describe_mode`), e.g. ``"a FIFO (named pipe)"``.
    """

    kind: str = "not a regular file"


def describe_mode(mode: int) -> str:
    """What a ``st_mode`` is, in words: ``"a FIFO (named pipe)"``, ``"a directory"``, ..."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "a regular file" if stat.S_ISREG(mode) else f"a special file ({stat.filemode(mode)})"


def _refuse(path: str | os.PathLike[str], mode: int) -> NotRegularFileError:
    code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
    kind = describe_mode(mode)
    error = NotRegularFileError(code, f"is {kind}, not a regular file", os.fspath(path))
    error.kind = kind
    return error


def check_regular(path: str | os.PathLike[str]) -> None:
    """Refuse ``path`` unless it is a regular file (one ``stat``, symlinks followed), for a
    file that someone else's code is about to open (a user's image ``loader``).

    Raises:
        NotRegularFileError: a directory, FIFO, device or socket.
        OSError: it cannot be stat-ed (``FileNotFoundError``...).
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _refuse(path, mode)


def _checked_stat(path: str | os.PathLike[str]) -> os.stat_result:
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, st.st_mode)
    return st


def open_regular(path: str | os.PathLike[str]) -> int:
    """Open ``path`` read-only if it is a regular file (symlinks followed); the caller owns the
    descriptor (close-on-exec). The open file is checked again (``fstat``): it is regular, so a
    mapping or a read of it ends.

    Raises:
        NotRegularFileError: ``path`` is not a regular file (never opened, so a FIFO cannot hang
            the caller and a device cannot be read forever).
        OSError: it cannot be stat-ed or opened (``FileNotFoundError``, ``PermissionError``...).
    """
    _checked_stat(path)
    fd = os.open(path, _FLAGS)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode):  # replaced between the stat and the open
            raise _refuse(path, now.st_mode)
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """All the bytes of the regular file ``path`` (see :func:`open_regular`).

    The hot path of an image folder, so one ``stat`` and no ``fstat`` for a file of the size
    the ``stat`` gave (one read, of that size plus one byte: getting the size is the end). Only when the bytes
    read are more or fewer than that (the path was replaced after the ``stat``, or the file
    changed) is the open file checked to be regular: a device swapped in is never read without
    end, and a FIFO swapped in (opened without blocking, so the open returns at once) is refused.

    Raises:
        NotRegularFileError, OSError: as :func:`open_regular`, or a read error.
    """
    size = _checked_stat(path).st_size
    fd = os.open(path, _FLAGS)
    try:
        parts: list[bytes] = []
        got = 0
        checked = False
        while True:
            want = size - got + 1 if got <= size else _CHUNK
            block = os.read(fd, want)
            if block:
                parts.append(block)
                got += len(block)
            if got != size and not checked and (got > size or not block):
                # Not the size the stat gave: the path may name another file now.
                now = os.fstat(fd)
                if not stat.S_ISREG(now.st_mode):
                    raise _refuse(path, now.st_mode)
                checked = True
            # A regular file's read returns less than asked only at its end: the stat's size
            # and one byte asked, the size got, is the whole file in one read.
            if not block or (got == size and len(block) < want):
                return b"".join(parts)  # one part (the usual case): that very object, no copy
    finally:
        os.close(fd)


def read_text(path: Path) -> str:
    """:func:`read_regular` decoded as UTF-8 (``UnicodeDecodeError`` is a ``ValueError``)."""
    return read_regular(path).decode()
