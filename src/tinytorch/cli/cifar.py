"""A check the download commands make before any work: the archive the user put in ``--root``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tinytorch.data import ChecksumError
from tinytorch.data.storage.cifar_format import CifarSpec
from tinytorch.data.storage.download import file_md5

__all__ = ["check_archive"]


def check_archive(args: argparse.Namespace, spec: CifarSpec) -> None:
    """Raise :class:`ChecksumError` when ``--root`` holds an archive with an unexpected MD5.

    Downloads go to a ``.part`` file that is renamed only after its MD5 matched, so an archive
    with another MD5 in ``--root`` was put there by the user, typically a mirror's copy without
    ``--md5``. Asked to download, the library would delete it and fetch the official archive
    (and, without network, leave nothing); the command stops first and names the flag instead.
    The expected MD5 is resolved as the library does: ``--md5``, ``$TINYTORCH_..._MD5``, the
    official one.
    """
    root = Path(args.root)
    archive = root / spec.archive
    if (root / spec.folder).is_dir() or not archive.is_file():
        return
    expected = str(args.md5 or os.environ.get(f"{spec.env_prefix}_MD5") or spec.md5).lower()
    actual = file_md5(archive)
    if actual != expected:
        raise ChecksumError(f"{archive} has md5 {actual}, expected {expected}: it was not downloaded here")
