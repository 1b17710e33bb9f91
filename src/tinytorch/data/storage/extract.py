"""Safe, atomic extraction of tar archives, recording what each file should hold.

Every member is checked (:func:`check_member`): absolute paths, ``..`` components, symbolic and
hard links, devices and FIFOs are refused, so nothing can be written outside the target. Only
plain files and directories under the wanted top-level folder are written, streamed in one pass
through the (possibly compressed) archive while their SHA-256 is computed.

- :func:`extract_tar` builds the whole folder in a temporary sibling directory and renames it into
  place only when the archive was read to its end: a crash or a bad member never leaves a
  half-extracted folder that looks complete, and an existing folder is never touched.
- :func:`restore_files` re-extracts chosen files into an existing folder, each one written to a
  temporary sibling and renamed over the old file when complete.

Both return a :class:`~tinytorch.data.storage.integrity.FileRecord` (size, SHA-256) for every file
of the folder in the archive, so later readers can tell whether an extracted file changed.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from collections.abc import Callable, Collection, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from tinytorch.data.storage.atomic import atomic_write, install_directory, named_os_error, staging_directory
from tinytorch.data.storage.integrity import CHUNK, CorruptDatasetError, FileRecord
from tinytorch.data.storage.regular_files import open_regular

__all__ = ["UnsafeArchiveError", "check_member", "extract_tar", "restore_files"]

_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
"""What reading a damaged archive raises (gzip's BadGzipFile is an OSError)."""


class UnsafeArchiveError(ValueError):
    """The archive holds a member that could write outside the target or is not a plain file."""


def check_member(member: tarfile.TarInfo) -> None:
    """Raise :class:`UnsafeArchiveError` unless ``member`` is a plain file or directory
    with a relative path that stays inside the extraction directory."""
    name = member.name
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path; refusing to extract")
    if ".." in path.parts or "\\" in name:
        raise UnsafeArchiveError(f"archive member {name!r} points outside the target; refusing to extract")
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(
            f"archive member {name!r} is a link to {member.linkname!r}; refusing to extract links"
        )
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(
            f"archive member {name!r} is a device, FIFO or other special file; refusing to extract"
        )


FileSink = Callable[[str, IO[bytes], tarfile.TarInfo], FileRecord]
"""Handles one file member: (path relative to the folder, its bytes, the member) -> its record."""


def extract_tar(
    archive: str | os.PathLike[str],
    root: str | os.PathLike[str],
    folder: str,
    *,
    before_install: Callable[[Path, dict[str, FileRecord]], None] | None = None,
) -> dict[str, FileRecord]:
    """Extract ``folder`` (a top-level directory of ``archive``) to ``root/folder``.

    Args:
        archive: path of a (possibly compressed) tar file.
        root: directory to extract into; must exist.
        folder: the top-level directory the archive is expected to contain.
        before_install: called with the complete staged folder and the records before it is
            renamed into place (to add files that must appear with it).

    Returns:
        Records of every file of ``folder`` in the archive, by path relative to ``folder``
        (``/``-separated). If another process installed ``root/folder`` first, it is left as it
        is and the records describe the archive.

    Raises:
        UnsafeArchiveError: a member is unsafe (see :func:`check_member`).
        CorruptDatasetError: the archive is damaged, truncated or not a tar file (names it).
        FileNotFoundError: the archive holds no ``folder`` directory.
        OSError: a file could not be written (names it).
    """
    target = Path(root) / folder
    with staging_directory(target) as staging:

        def write(rel: str, src: IO[bytes], member: tarfile.TarInfo) -> FileRecord:
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(path, "wb") as out:
                    record = _copy(src, out, archive)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as e:
                if e.filename is None:
                    raise named_os_error(e, path, "write") from e
                raise
            os.utime(path, ns=(int(member.mtime * 1e9),) * 2)  # as tar does: an edit shows in mtime
            return record

        records = _scan(
            archive, folder, write, on_dir=lambda rel: (staging / rel).mkdir(parents=True, exist_ok=True)
        )
        if before_install is not None:
            before_install(staging, records)
        install_directory(staging, target)
    return records


def restore_files(
    archive: str | os.PathLike[str], root: str | os.PathLike[str], folder: str, names: Collection[str]
) -> dict[str, FileRecord]:
    """Re-extract the files ``names`` (relative to ``folder``) into the existing ``root/folder``.

    Each file is written to a temporary sibling and renamed over the old one when complete;
    nothing else in the folder is touched. With ``names`` empty, nothing is written: the archive
    is only read to compute the records.

    Returns:
        Records of every file of ``folder`` in the archive (as :func:`extract_tar`).

    Raises:
        UnsafeArchiveError, CorruptDatasetError, FileNotFoundError, OSError: as :func:`extract_tar`;
        CorruptDatasetError also when a name is not a file of the archive.
    """
    target = Path(root) / folder
    wanted = set(names)

    def write(rel: str, src: IO[bytes], member: tarfile.TarInfo) -> FileRecord:
        if rel not in wanted:
            return _copy(src, None, archive)
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as out:
            record = _copy(src, out, archive)
        os.utime(path, ns=(int(member.mtime * 1e9),) * 2)
        return record

    records = _scan(archive, folder, write)
    missing = sorted(wanted - records.keys())
    if missing:
        raise CorruptDatasetError(
            f"{archive} has no file {folder}/{missing[0]}; is it the right archive?", path=archive
        )
    return records


def _scan(
    archive: str | os.PathLike[str],
    folder: str,
    on_file: FileSink,
    on_dir: Callable[[str], None] | None = None,
) -> dict[str, FileRecord]:
    """Check every member, hand each file (and directory) under ``folder`` to the callbacks."""
    records: dict[str, FileRecord] = {}
    found = False
    raw = os.fdopen(open_regular(archive), "rb")  # a regular file only: a FIFO would hang
    try:
        tar = tarfile.open(fileobj=raw, mode="r|*")  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as e:
        raw.close()
        raise _damaged(archive, e) from e
    except BaseException:
        raw.close()
        raise
    with raw, tar:
        for member in _members(tar, archive):
            check_member(member)
            parts = PurePosixPath(member.name).parts
            if not parts or parts[0] != folder:
                continue
            found = True
            rel = "/".join(parts[1:])
            if member.isdir():
                if rel and on_dir is not None:
                    on_dir(rel)
            elif rel:
                src = tar.extractfile(member)
                assert src is not None  # a regular file (checked)
                records[rel] = on_file(rel, src, member)
    if not found:
        raise FileNotFoundError(f"{archive} has no top-level folder {folder!r}; is it the right archive?")
    return records


def _members(tar: tarfile.TarFile, archive: str | os.PathLike[str]) -> Iterator[tarfile.TarInfo]:
    it = iter(tar)
    while True:
        try:
            member = next(it)
        except StopIteration:
            return
        except _READ_ERRORS as e:
            raise _damaged(archive, e) from e
        yield member


def _copy(src: IO[bytes], out: IO[bytes] | None, archive: str | os.PathLike[str]) -> FileRecord:
    """Stream a member into ``out`` (or nowhere), hashing it."""
    digest = hashlib.sha256()
    size = 0
    while True:
        try:
            block = src.read(CHUNK)
        except _READ_ERRORS as e:
            raise _damaged(archive, e) from e
        if not block:
            return FileRecord(size, digest.hexdigest())
        digest.update(block)
        size += len(block)
        if out is not None:
            out.write(block)


def _damaged(archive: str | os.PathLike[str], error: BaseException) -> CorruptDatasetError:
    return CorruptDatasetError(
        f"{archive} is damaged, truncated or not a tar archive ({type(error).__name__}: {error})",
        path=archive,
    )
