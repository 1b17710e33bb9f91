"""Errors on the command line: the library's exceptions reworded in command-line terms.

The library's messages speak to Python callers (``pass download=True``, ``overwrite=True``,
``url=/md5=``). :func:`explain` is the one place where an exception that reaches the command
line becomes a message about flags; everything it does not recognise is a bug and keeps its
traceback. The download errors carry what a message needs as attributes (``url``, ``path``,
``expected_md5``, ``actual_md5``, ``attempts``); other messages are passed on with their
keywords replaced by the flags.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from tinytorch.data import (
    ChecksumError,
    CorruptDatasetError,
    DownloadError,
    ForbiddenPickleError,
    InsufficientSharedMemoryError,
    ShardError,
    UnsafeArchiveError,
)
from tinytorch.data.storage.cifar_format import CIFAR10, CIFAR100, CifarSpec
from tinytorch.data.storage.download import SourceError

__all__ = ["CommandError", "explain"]


class CommandError(Exception):
    """A mistake a command found in its input, already worded in command-line terms (exit 2)."""


_KEYWORDS = (
    ("write_shards(..., overwrite=True)", "`tinytorch-data convert ... --overwrite`"),
    ("Pass download=True", "Run `tinytorch-data demo` once to download it"),
    ("run again with download=True", "run `tinytorch-data demo` again"),
    ("pass overwrite=True", "pass --overwrite"),
    ("overwrite=True", "--overwrite"),
    ("url=/md5=", "--url/--md5"),
    ("url=", "--url"),
    ("md5=", "--md5"),
    ("write_shards()", "`tinytorch-data convert`"),
)


def explain(error: BaseException, args: argparse.Namespace) -> str | None:
    """The message to print for ``error`` raised while running the command ``args``.

    Returns ``None`` for anything that is not a user's or a machine's problem (a bug): those
    keep their traceback.
    """
    if isinstance(error, CommandError):
        return str(error)
    if isinstance(error, DownloadError):
        return _download_failed(error, args)
    if isinstance(error, ChecksumError):
        return _wrong_checksum(error, args)
    if isinstance(error, SourceError):
        option = {"md5": "--md5", "url": "--url"}.get(error.name, error.name)
        problem = _in_flag_terms(str(error)).replace(error.name, option, 1)
        return f"{problem}\nCorrect {option}, or leave it out."
    if isinstance(error, FileExistsError) and getattr(args, "command", None) == "convert":
        if "did not write" in str(error):  # someone else's files: --overwrite would not help
            return _in_flag_terms(str(error))
        return (
            f"{args.directory} already holds a shard dataset: pass --overwrite to replace it, or "
            "choose another DIRECTORY"
        )
    if isinstance(error, FileNotFoundError) and _cifar_missing(args):
        return _not_downloaded(args)
    if isinstance(error, (CorruptDatasetError, UnsafeArchiveError, ForbiddenPickleError)):
        root = Path(getattr(args, "root", "."))
        if isinstance(error, UnsafeArchiveError):
            fix = f"The archive is not the real one: delete {root / _spec(args).archive} and get it again."
        else:
            folder = root / _spec(args).folder
            fix = f"The extracted files are damaged or not the real ones: delete {folder} and run again."
        return f"{_in_flag_terms(str(error))}\n{fix}"
    if isinstance(error, ShardError):
        return _in_flag_terms(str(error))
    if isinstance(error, InsufficientSharedMemoryError):  # its fix names DataLoader keywords
        problem = str(error).split(". Lower", 1)[0]
        return f"{problem}\nUse fewer --workers or smaller --batch-sizes."
    if isinstance(error, OSError):  # the machine's answer (permissions, space, a missing file)
        if error.strerror is None:
            return _in_flag_terms(str(error))
        message = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
        flag = _flag_for_path(error.filename, args)
        return f"{message}\nChoose another place with {flag}." if flag else message
    return None


def _flag_for_path(filename: Any, args: argparse.Namespace) -> str | None:
    """The option whose path holds ``filename`` (``--root``, ``--out``, ...), if any."""
    if not filename:
        return None
    path = Path(os.fsdecode(filename)).resolve()
    for dest, flag in (("directory", "DIRECTORY"), ("json", "--json"), ("out", "--out"), ("root", "--root")):
        value = getattr(args, dest, None)
        if value is not None and (path == Path(value).resolve() or Path(value).resolve() in path.parents):
            return flag
    return None


def _download_failed(error: DownloadError, args: argparse.Namespace) -> str:
    spec = _spec(args)
    url = error.url
    attempts = str(error.attempts) if error.attempts else None
    cause = error.__cause__
    reason = getattr(cause, "reason", None) or cause
    why = f": {reason}" if reason else ""
    tries = f" ({attempts} attempts)" if attempts and attempts != "1" else ""
    archive = Path(args.root) / spec.archive
    md5 = error.expected_md5 or _effective_md5(args, spec)
    alternatives = [
        f"put {spec.archive} (md5 {md5}) at {archive}",
        "pass --url URL --md5 MD5 for a mirror",
    ]
    if hasattr(args, "synthetic"):
        alternatives.append(f"run `tinytorch-data {args.command} --synthetic` (generated data, not CIFAR-10)")
    return (
        f"could not download {spec.name.replace('CIFAR', 'CIFAR-')} from {url or 'its address'}{tries}{why}\n"
        f"Without network: {', '.join(alternatives[:-1])}, or {alternatives[-1]}."
    )


def _wrong_checksum(error: ChecksumError, args: argparse.Namespace) -> str:
    actual, expected, url, path = error.actual_md5, error.expected_md5, error.url, error.path
    if url:  # the download came with another md5 (a file in --root has a path, no url)
        return (
            f"the archive from {url} has md5 {actual}, not the expected {expected} (it was not kept)\n"
            f"Check --url, or pass --md5 {actual} if that mirror's archive is the one you want."
        )
    return (
        f"{path} has md5 {actual}, not the expected {expected}: it is incomplete or another archive "
        "(it was kept)\n"
        f"Pass --md5 {actual} if it is a mirror's archive you trust; otherwise replace it with a "
        "complete copy."
    )


def _not_downloaded(args: argparse.Namespace) -> str:
    spec = _spec(args)
    root = Path(args.root)
    return (
        f"CIFAR-10 is not in {root} (no {spec.folder}/ folder, no {spec.archive}); "
        f"`tinytorch-data {args.command}` does not download it\n"
        f"Run `tinytorch-data demo --root {root}` once to download it, put {spec.archive} there, "
        "or pass --synthetic."
    )


def _cifar_missing(args: argparse.Namespace) -> bool:
    """Whether the command reads CIFAR without downloading and found nothing in ``--root``."""
    if getattr(args, "synthetic", True) or hasattr(args, "url") or not hasattr(args, "root"):
        return False
    spec = _spec(args)
    root = Path(args.root)
    return not (root / spec.folder).is_dir() and not (root / spec.archive).is_file()


def _spec(args: argparse.Namespace) -> CifarSpec:
    return CIFAR100 if getattr(args, "dataset", None) == "cifar100" else CIFAR10


def _effective_md5(args: argparse.Namespace, spec: CifarSpec) -> str:
    given: Any = getattr(args, "md5", None)
    return str(given or os.environ.get(f"{spec.env_prefix}_MD5") or spec.md5).lower()


def _in_flag_terms(message: str) -> str:
    for keyword, flag in _KEYWORDS:
        message = message.replace(keyword, flag)
    return message
