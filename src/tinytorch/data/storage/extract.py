"""Safe, atomic extraction of tar archives.

Every member is checked before anything is written: absolute paths, ``..``
components, symbolic and hard links, devices and FIFOs are refused. The
archive is extracted into a temporary directory beside the target and the
wanted top-level directory is renamed into place only when extraction
finished, so a crash never leaves a half-extracted dataset that looks complete.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

__all__ = ["UnsafeArchiveError", "extract_tar"]


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


def extract_tar(archive: str | os.PathLike[str], root: str | os.PathLike[str], folder: str) -> Path:
    """Extract ``folder`` (a top-level directory of ``archive``) to ``root/folder``.

    Args:
        archive: path of a (possibly compressed) tar file.
        root: directory to extract into; must exist.
        folder: the top-level directory the archive is expected to contain.

    Returns:
        ``root / folder``, complete.

    Raises:
        UnsafeArchiveError: a member is unsafe (see :func:`check_member`).
        tarfile.TarError: the archive is corrupt or truncated.
        FileNotFoundError: the archive holds no ``folder`` directory.
    """
    root = Path(root)
    target = root / folder
    staging = Path(tempfile.mkdtemp(prefix=f".{folder}.extract-", dir=root))
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.10.12 has no filters; members were checked above
                tar.extractall(staging, members=members)  # noqa: S202
        extracted = staging / folder
        if not extracted.is_dir():
            raise FileNotFoundError(f"{archive} has no top-level folder {folder!r}; is it the right archive?")
        if target.exists():
            shutil.rmtree(target)
        os.replace(extracted, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
