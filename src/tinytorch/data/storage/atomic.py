"""Writes that never lose the old data: a temporary sibling, fsync, then one rename.

Every file the library writes goes through :func:`atomic_write`: the bytes go to a temporary file
beside the destination (same directory, so the same filesystem), are flushed to disk with
``fsync``, and only then replace the destination with ``os.replace``, a single atomic rename; the
directory is fsynced so the rename survives a power cut. Until that rename, the old file (if any) is
untouched and readers (and memory mappings) keep seeing it whole; on any failure the temporary file
is removed and the destination is exactly as it was. Directories are staged the same way
(:func:`staging_directory` and :func:`install_directory`).

Temporary names start with ``.`` and end with ``.tmp``; one left behind by a killed process holds
nothing that is in use and is safe to delete.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_write",
    "fsync_directory",
    "install_directory",
    "move_into_place",
    "named_os_error",
    "staging_directory",
]


def named_os_error(error: OSError, path: str | os.PathLike[str], action: str) -> OSError:
    """``error`` as an ``OSError`` of the same errno whose ``filename`` is ``path``.

    Errors from ``write``/``fsync`` (e.g. ``ENOSPC``) carry no file name; this one says which file
    could not be written (``action``: "write", "replace", ...). Use as
    ``raise named_os_error(e, path, "write") from e``.
    """
    reason = error.strerror or str(error) or type(error).__name__
    # OSError(errno, strerror, filename) picks the subclass for the errno (FileNotFoundError,
    # PermissionError, ...) and prints as "[Errno 28] No space left on device (could not write
    # it): '/data/x.npy'".
    return OSError(error.errno, f"{reason} (could not {action} it)", os.fspath(path))


def _temporary_sibling(path: Path, *, directory: bool = False) -> Path:
    """Create (exclusively) and return a new temporary file or directory beside ``path``."""
    for _ in range(100):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            if directory:
                temp.mkdir()
            else:
                # O_EXCL: never follow or reuse an existing name; 0o666 lets the umask decide the
                # mode, as for any new file (mkstemp would make it 0o600).
                os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
        except FileExistsError:
            continue
        return temp
    raise FileExistsError(f"could not create a temporary file beside {path}")  # pragma: no cover


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename into it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Write ``path`` all at once: ``with atomic_write(p) as f: f.write(...)``.

    The yielded binary file is a temporary sibling of ``path``. When the block ends without an
    exception it is flushed, fsynced and renamed over ``path`` (replacing any previous file in one
    step; a process that has the old file open or memory-mapped keeps reading the old bytes). When
    the block raises, the temporary file is removed and ``path`` is left as it was.

    Raises:
        OSError: the file could not be created, written or renamed; the error names ``path``
            (``raise ... from`` the original).
        Whatever the block raises, unchanged.
    """
    path = Path(path)
    try:
        temp = _temporary_sibling(path)
    except OSError as e:
        raise named_os_error(e, path, "write") from e
    try:
        with open(temp, "wb") as f:
            try:
                yield f
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                if e.filename is None:  # write()/fsync() errors name no file
                    raise named_os_error(e, path, "write") from e
                raise
        try:
            os.replace(temp, path)
        except OSError as e:
            raise named_os_error(e, path, "replace") from e
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def move_into_place(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Rename the finished file ``source`` to ``path``, never replacing an existing ``path``.

    Used where the destination may be a file the user put there: a hard link is created (which
    fails if ``path`` exists) and ``source`` removed; on filesystems without hard links, the
    existence check and the rename are two steps.

    Raises:
        FileExistsError: ``path`` exists; ``source`` is left as it is.
        OSError: the rename failed; names ``path``.
    """
    source, path = Path(source), Path(path)
    try:
        os.link(source, path)
    except FileExistsError:
        raise FileExistsError(
            f"{path} appeared while it was being written; it was left as it is, and the new file "
            f"is at {source}"
        ) from None
    except OSError:  # no hard links here (some network or FAT filesystems)
        if path.exists():
            raise FileExistsError(
                f"{path} appeared while it was being written; the new file is at {source}"
            ) from None
        try:
            os.replace(source, path)
        except OSError as e:
            raise named_os_error(e, path, "create") from e
    else:
        source.unlink()
    fsync_directory(path.parent)


@contextmanager
def staging_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A new empty temporary directory beside ``target``, removed with its contents on exit.

    Build a directory's contents in it, then move them into place with :func:`install_directory`
    (which empties the staging directory) before the block ends.

    Raises:
        OSError: the directory could not be created; names ``target``.
    """
    target = Path(target)
    try:
        staging = _temporary_sibling(target, directory=True)
    except OSError as e:
        raise named_os_error(e, target.parent, "create a temporary directory in") from e
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_directory(staged: str | os.PathLike[str], target: str | os.PathLike[str]) -> bool:
    """Rename the complete directory ``staged`` to ``target`` if ``target`` does not exist.

    Every file under ``staged`` must already be fsynced (files written with :func:`atomic_write`
    or by the caller with ``fsync``); the directories are fsynced here, then the rename is one
    atomic step. An existing ``target`` is never replaced or merged into.

    Returns:
        True if installed; False if ``target`` already existed (e.g. another process installed
        it first), in which case ``staged`` is left for the caller's :func:`staging_directory`
        to remove.

    Raises:
        OSError: the rename failed for another reason; names ``target``.
    """
    staged, target = Path(staged), Path(target)
    for directory, _, _ in os.walk(staged):
        fsync_directory(directory)
    try:
        os.rename(staged, target)  # fails on an existing non-empty directory (and on a file)
    except OSError as e:
        if target.exists():
            return False
        raise named_os_error(e, target, "create") from e
    fsync_directory(target.parent)
    return True
