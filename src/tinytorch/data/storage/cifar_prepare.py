"""Getting a verified CIFAR split: cache, extracted files, archive, download, in that order.

:func:`prepare_cifar` takes the cheapest source that verifies:

1. the array cache ``root/<folder>/tinytorch-cache/<split>/`` (memory-mapped; see
   :mod:`~tinytorch.data.storage.array_cache` for what is checked when), if built from the
   extracted files as they are now (their sizes and modification times);
2. the extracted files ``root/<folder>/``, each checked against the size and SHA-256 recorded in
   ``root/<folder>/tinytorch-cache/files.json`` when it was extracted from the verified archive
   (or, for a folder extracted by hand, when it was first read), then parsed with a restricted
   unpickler and cached;
3. the archive ``root/<archive>``, MD5-checked, then extracted (the per-file records with it);
4. a download of the archive (``download_ok``).

Files it never deletes: a file the user put in place. An archive in ``root`` whose MD5 is not the
expected one is left as it is and reported (:class:`ChecksumError`: both checksums, the path, and
the keyword and variable that accept another checksum), with or without ``download_ok``: the
download is not attempted, since it could only be placed where the user's file is.

What it repairs (``download_ok`` only): an extracted file that is missing or differs from its
record is re-extracted from the verified archive (downloaded first if it is not in ``root``), the
file alone replaced atomically. Without ``download_ok`` the error names the file and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinytorch.data.storage.array_cache import fingerprint, load_arrays, save_arrays
from tinytorch.data.storage.cifar_format import (
    CifarSpec,
    CifarSplit,
    label_range_problem,
    read_file,
    read_split,
    split_files,
)
from tinytorch.data.storage.download import (
    ChecksumError,
    SourceOptions,
    check_md5,
    check_url,
    download,
    file_md5,
)
from tinytorch.data.storage.extract import extract_tar, restore_files
from tinytorch.data.storage.integrity import CorruptDatasetError, FileRecord, read_records, write_records

__all__ = [
    "CACHE_DIR",
    "RECORDS",
    "CifarSource",
    "open_cache",
    "prepare_cifar",
    "prepare_source",
    "resolve_source",
]

CACHE_DIR = "tinytorch-cache"
RECORDS = "files.json"
"""Per-file records of the extracted folder, in ``<folder>/tinytorch-cache/``."""


@dataclass(frozen=True)
class CifarSource:
    """Where a CIFAR archive comes from, resolved once from keywords, environment and defaults."""

    spec: CifarSpec
    root: Path
    url: str
    md5: str
    md5_origin: str
    """Where ``md5`` came from, for messages: ``"md5="``, the variable, or the official one."""
    options: SourceOptions

    @property
    def folder(self) -> Path:
        return self.root / self.spec.folder

    @property
    def archive(self) -> Path:
        return self.root / self.spec.archive

    @property
    def records_path(self) -> Path:
        return self.folder / CACHE_DIR / RECORDS

    def cache(self, train: bool) -> Path:
        return self.folder / CACHE_DIR / ("train" if train else "test")


def resolve_source(
    spec: CifarSpec, root: str | os.PathLike[str], url: str | None, md5: str | None
) -> CifarSource:
    """``url=``, else ``$<PREFIX>_URL``, else the official address; the same for ``md5``.

    Raises:
        NotADirectoryError: ``root`` is an existing file.
        TypeError, ValueError: ``url`` or ``md5`` (or its variable) is malformed; names which.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a directory path, got {type(root).__name__} {root!r}")
    root_path = Path(root).expanduser()
    if root_path.exists() and not root_path.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR,
            f"root={str(root)!r} is a file; pass the directory that holds (or is to receive) "
            f"{spec.archive} or its extracted folder {spec.folder}",
            str(root_path),
        )
    options = SourceOptions(url_env=f"{spec.env_prefix}_URL", md5_env=f"{spec.env_prefix}_MD5")
    if url is not None and not isinstance(url, str):
        raise TypeError(f"url must be a string, got {type(url).__name__} {url!r}")
    env_md5 = os.environ.get(f"{spec.env_prefix}_MD5")
    if md5 is not None:
        md5, origin = check_md5(md5, "md5"), "given by md5="
    elif env_md5:
        md5, origin = check_md5(env_md5, f"${spec.env_prefix}_MD5"), f"given by ${spec.env_prefix}_MD5"
    else:
        md5, origin = spec.md5, f"the official {spec.name} archive's"
    env_url = os.environ.get(f"{spec.env_prefix}_URL")
    if url is not None:
        url = check_url(url, "url")
    elif env_url:
        url = check_url(env_url, f"${spec.env_prefix}_URL")
    return CifarSource(
        spec=spec,
        root=root_path,
        url=url or spec.url,
        md5=md5,
        md5_origin=origin,
        options=options,
    )


def prepare_cifar(
    spec: CifarSpec,
    root: str | os.PathLike[str],
    *,
    train: bool,
    download_ok: bool,
    url: str | None = None,
    md5: str | None = None,
    progress: bool | None = None,
) -> CifarSplit:
    """Return a split of ``spec`` from the cheapest source that verifies (see module docs).

    Raises:
        FileNotFoundError: nothing usable in ``root`` and ``download_ok`` is False, or an
            extracted file is missing and ``download_ok`` is False; the message says where it
            looked and what to do.
        ChecksumError: the archive in ``root`` has another MD5 (kept; ``removed`` False), or the
            downloaded one does (removed; ``removed`` True).
        DownloadError: the download failed; the message says how to supply the archive by hand.
        CorruptDatasetError: an extracted file differs from its record (``download_ok`` False),
            or a file is malformed; ``path`` names it.
        ForbiddenPickleError, UnsafeArchiveError: a hostile file, named.
        NotADirectoryError, TypeError, ValueError: bad ``root``, ``url`` or ``md5``.
    """
    source = resolve_source(spec, root, url, md5)
    return prepare_source(source, train=train, download_ok=download_ok, progress=progress)


def prepare_source(
    source: CifarSource, *, train: bool, download_ok: bool, progress: bool | None = None
) -> CifarSplit:
    """:func:`prepare_cifar` for a resolved source."""
    spec = source.spec
    folder = source.folder
    extracted_now = False
    if folder.is_dir():
        cached = _load_cache_or_warn(source, train)
        if cached is not None:
            return cached
    elif folder.exists():
        raise NotADirectoryError(
            errno.ENOTDIR, f"{folder} should be the extracted {spec.name} folder but is a file", str(folder)
        )
    else:
        archive = _obtain_archive(source, download_ok, progress)
        info = _archive_info(source)

        def add_records(staged: Path, records: dict[str, FileRecord]) -> None:
            write_records(staged / CACHE_DIR / RECORDS, records, info)

        extract_tar(archive, source.root, spec.folder, before_install=add_records)
        extracted_now = True
    try:
        contents = _verified_files(source, train, download_ok, progress)
        data = read_split(spec, folder, train, contents)
    except Exception:
        if extracted_now:
            # We wrote this folder a moment ago from an archive whose files do not parse: leave
            # nothing a later run could trust.
            shutil.rmtree(folder, ignore_errors=True)
        raise
    with contextlib.suppress(OSError):  # a read-only root still works, parsing every time
        save_arrays(
            source.cache(train),
            {"images": data.images, **data.labels},
            _cache_source(source, train),
            meta={"names": data.names},
        )
    # Serve the memory-mapped copy when the cache was written: one copy in the page cache,
    # shared by every worker, instead of a private one per process.
    return _load_cache_or_warn(source, train) or data


def _archive_info(source: CifarSource) -> dict[str, Any]:
    return {"origin": "archive", "archive": source.spec.archive, "md5": source.md5}


def _obtain_archive(source: CifarSource, download_ok: bool, progress: bool | None) -> Path:
    """The verified archive in ``root``, downloaded first when allowed and needed."""
    archive, md5, options = source.archive, source.md5, source.options
    if archive.exists():
        actual = file_md5(archive)
        if actual == md5:
            return archive
        raise ChecksumError(
            f"{archive} has md5 {actual}, expected {md5} ({source.md5_origin}); the file was "
            f"left as it is. If it is the archive from your mirror and you trust it, "
            f"{options.pass_md5(actual)}. If it is incomplete or damaged, delete it and run again "
            f"with download=True to download {source.url}",
            path=archive,
            expected_md5=md5,
            actual_md5=actual,
            url=None,
            removed=False,
            options=options,
        )
    if not download_ok:
        raise FileNotFoundError(
            errno.ENOENT,
            f"{source.spec.name} is not in {source.root}: looked for the folder {source.folder} and "
            f"the archive {archive}. Pass download=True, or download {source.url} (md5 {md5}) "
            f"yourself and put it at {archive}",
            str(archive),
        )
    created = _missing_parents(source.root)
    source.root.mkdir(parents=True, exist_ok=True)
    try:
        return download(source.url, archive, md5=md5, progress=progress, options=options)
    except BaseException:
        for directory in created:  # a failed first download leaves no empty folders behind
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and its missing ancestors, deepest first (what ``mkdir(parents=True)`` creates)."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    return missing


def _verified_files(
    source: CifarSource, train: bool, download_ok: bool, progress: bool | None
) -> dict[str, bytes]:
    """The split's files, each matching its record; repaired from the archive when allowed."""
    names = [p.name for p in split_files(source.spec, source.folder, train)]
    stored = read_records(source.records_path)
    if stored is None:
        records, info = _record_folder(source, names)
    else:
        records, info = stored
    contents, problems = _check_files(source.folder, names, records)
    unrecorded = [n for n in contents if n not in records]
    if unrecorded and not problems:  # e.g. the other split of a folder first used by hand
        records = {**records, **{n: FileRecord.of(contents[n]) for n in unrecorded}}
        with contextlib.suppress(OSError):
            write_records(source.records_path, records, info)
    if not problems:
        return contents
    name, problem = problems[0]
    path = source.folder / name
    if not download_ok:
        raise _file_error(source, path, problem, info, more=len(problems) - 1)
    archive = _obtain_archive(source, download_ok, progress)
    bad = [n for n, _ in problems]
    records = restore_files(archive, source.root, source.spec.folder, bad)
    with contextlib.suppress(OSError):
        write_records(source.records_path, records, _archive_info(source))
    repaired, still = _check_files(source.folder, bad, records)
    if still:
        name, problem = still[0]
        raise CorruptDatasetError(
            f"{source.folder / name} {problem} right after it was restored from {archive}; "
            "something else is writing to it",
            path=source.folder / name,
        )
    return {**contents, **repaired}


def _record_folder(source: CifarSource, names: list[str]) -> tuple[dict[str, FileRecord], dict[str, Any]]:
    """Records for a folder that has none (extracted by hand, or by an older version).

    From the archive when it is in ``root`` and verifies (one read of it); otherwise from the
    files as they are now ("first use": later changes are caught, the present state is trusted).
    """
    archive = source.archive
    if archive.is_file() and file_md5(archive) == source.md5:
        records = restore_files(archive, source.root, source.spec.folder, ())
        info = _archive_info(source)
    else:
        records = {}
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                records[name] = FileRecord.of(read_file(source.folder / name))
        info = {"origin": "first use"}
    with contextlib.suppress(OSError):  # read-only: checked against these in memory only
        write_records(source.records_path, records, info)
    return records, info


def _check_files(
    folder: Path, names: list[str], records: dict[str, FileRecord]
) -> tuple[dict[str, bytes], list[tuple[str, str]]]:
    """Read each file; ``(contents, [(name, problem), ...])`` against ``records``."""
    contents: dict[str, bytes] = {}
    problems: list[tuple[str, str]] = []
    for name in names:
        try:
            data = read_file(folder / name)
        except FileNotFoundError:
            problems.append((name, "is missing"))
            continue
        record = records.get(name)
        problem = record.describe_mismatch(data) if record is not None else None
        if problem is None:
            contents[name] = data
        else:
            problems.append((name, problem))
    return contents, problems


def _file_error(
    source: CifarSource, path: Path, problem: str, info: dict[str, Any], *, more: int
) -> Exception:
    origin = (
        f"recorded from the verified archive {info.get('archive', source.spec.archive)}"
        if info.get("origin") == "archive"
        else "recorded when the folder was first read"
    )
    others = f" ({more} more file(s) too)" if more else ""
    message = (
        f"{path} {problem} ({origin}){others}. Run again with download=True to restore it from "
        f"the verified archive {source.archive} (downloaded if it is not there), or, if you "
        f"changed the files on purpose, delete {source.records_path} to accept them as they are"
    )
    if problem == "is missing":
        return FileNotFoundError(errno.ENOENT, message, str(path))
    return CorruptDatasetError(message, path=path)


def _cache_source(source: CifarSource, train: bool) -> dict[str, Any]:
    files = fingerprint(split_files(source.spec, source.folder, train))
    return {"dataset": source.spec.name, "split": "train" if train else "test", "files": files}


def open_cache(source: CifarSource, train: bool) -> CifarSplit | None:
    """The verified memory-mapped split, or ``None`` when there is none for the files as they are.

    Checks (besides :func:`~tinytorch.data.storage.array_cache.load_arrays`): every array the
    split needs is there with the right dtype and shape, labels are class indices (vectorized
    range check, every open) and the class names are complete.

    Raises:
        CorruptDatasetError: the cache fails a check; names the file.
    """
    spec = source.spec
    try:
        cache_source = _cache_source(source, train)
    except FileNotFoundError:
        return None
    directory = source.cache(train)
    loaded = load_arrays(directory, cache_source)
    if loaded is None:
        return None
    arrays, meta = loaded.arrays, loaded.meta
    images = arrays.get("images")
    if images is None or images.dtype != "uint8" or images.ndim != 4 or images.shape[1:] != (3, 32, 32):
        raise CorruptDatasetError(f"{directory / 'images.npy'} is not (N, 3, 32, 32) uint8", path=directory)
    labels = {}
    for key, num_classes in zip(spec.label_keys, spec.num_classes, strict=True):
        path = directory / f"{key}.npy"
        array = arrays.get(key)
        if array is None or array.dtype != "int64" or array.shape != (len(images),):
            raise CorruptDatasetError(f"{path} is not ({len(images)},) int64", path=path)
        problem = label_range_problem(array, num_classes)
        if problem:
            raise CorruptDatasetError(f"{path}: {problem}", path=path)
        labels[key] = array
    names = meta.get("names")
    if not isinstance(names, dict) or any(
        not isinstance(names.get(k), list)
        or len(names[k]) != n
        or not all(isinstance(x, str) for x in names[k])
        for k, n in zip(spec.names_keys, spec.num_classes, strict=True)
    ):
        manifest = directory / "manifest.json"
        raise CorruptDatasetError(f"{manifest}: the class names are incomplete", path=manifest)
    return CifarSplit(images=images, labels=labels, names=names, files=loaded.files)


def _load_cache_or_warn(source: CifarSource, train: bool) -> CifarSplit | None:
    try:
        return open_cache(source, train)
    except CorruptDatasetError as e:
        warnings.warn(f"{e}; rebuilding the cache from the verified files", RuntimeWarning, stacklevel=4)
        return None
