"""Writing shard datasets: :class:`ShardWriter` fills a directory, :func:`replacing_directory`
puts it in place of the target only once it is complete.

A new dataset is written into a temporary sibling of its target (``.NAME.tmp-XXXXXXXX``); only
when every shard and the manifest are written and flushed to disk does it take the target's
name, in one atomic exchange (``renameat2(RENAME_EXCHANGE)``; two renames where the filesystem
lacks it). The old dataset is removed after that, so a failed write (an exception in the source,
a full disk, an interrupt) leaves the old dataset as it was and no temporary files. A killed
process (``SIGKILL``, a power cut) cleans nothing up: its ``.NAME.tmp-XXXXXXXX`` stays beside the
target, never read, and the next write into the target warns naming it (it is not deleted, as
it may be a write still running).

What is the library's to delete: a dataset directory's ``manifest.json`` (one this library
wrote: its format is ``tinytorch-shards`` and its checksum holds) and the shard files that
manifest lists (``shard-NNNNN.tts``, not directories). Anything else in the directory, a
file merely *named* like a shard included, is the user's: a target holding any is refused
before anything is written. A target that is a symlink is written through: the dataset
replaces the directory the link points to (beside it, atomically, as above), and the link stays.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import warnings
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.data.storage.regular_files import read_regular
from tinytorch.data.storage.shards import (
    FORMAT,
    MANIFEST,
    Field,
    Manifest,
    ShardInfo,
    aligned,
    field_problem,
    fields_problem,
    manifest_checksum,
    shard_layout,
)

__all__ = [
    "ShardWriter",
    "check_replaceable",
    "exchange_entries",
    "owned_names",
    "replacing_directory",
    "resolve_target",
]

_SHARD_FILE = re.compile(r"shard-\d{5,}\.tts")


def _flatten_sample(sample: Any, index: int) -> tuple[str, dict[str, Any]]:
    if isinstance(sample, Mapping):
        for key in sample:
            if not isinstance(key, str):
                raise TypeError(
                    f"sample {index} has the key {key!r} ({type(key).__name__}): dict samples need str "
                    "keys (a read gives the field names back as str); use str keys, e.g. "
                    "{str(k): v for k, v in sample.items()}"
                )
        return "dict", dict(sample)
    if isinstance(sample, (tuple, list)):
        return "tuple", {str(i): v for i, v in enumerate(sample)}
    return "array", {"0": sample}


def _field_of(name: str, value: Any) -> Field:
    if isinstance(value, bytes):
        return Field(name, "bytes")
    if isinstance(value, str):
        return Field(name, "str")
    array = np.asarray(value)
    return Field(name, "array", array.dtype.str, array.shape)


def _check_first(structure: str, fields: dict[str, Field], values: dict[str, Any]) -> None:
    """Refuse a first sample whose fields a reader would refuse (the format's rules, from
    :mod:`~tinytorch.data.storage.shards`, so a dataset is never written that cannot be read)."""
    for name, field in fields.items():
        problem = field_problem(field)
        if problem is not None and problem[0] == "dtype":
            raise TypeError(
                f"sample 0 field {name!r}: cannot store {type(values[name]).__name__} values of dtype "
                f"{np.asarray(values[name]).dtype} in shards ({problem[1]} only); store numpy arrays "
                "or numbers, bytes or str"
            )
        if problem is not None:
            part, expected, found = problem
            raise ValueError(
                f"sample 0 field {name!r}: its {part} is {found}, but a shard dataset holds {expected} "
                "(ShardedDataset could not read it back)"
            )
        if field.kind == "array" and np.dtype(field.dtype) != np.asarray(values[name]).dtype:
            raise TypeError(
                f"sample 0 field {name!r}: dtype {np.asarray(values[name]).dtype} would read back as "
                f"{np.dtype(field.dtype)} (a structured dtype's fields are not stored); store each "
                "of its fields as a field of the sample"
            )
    if not fields:
        raise ValueError(
            f"sample 0 has no fields (an empty {'dict' if structure == 'dict' else 'tuple or list'}); "
            "a shard dataset needs at least one field per sample"
        )
    problem = fields_problem(structure, tuple(fields.values()))
    if problem is not None:
        part, expected, found = problem
        raise ValueError(
            f"sample 0 ({structure}): its {part} is {found}, but a shard dataset needs {expected}"
            + ("; rename it" if "x.data" in expected else "")
        )


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ShardWriter:
    """Writes samples into ``directory`` shard by shard; :meth:`close` writes the manifest last
    (with ``metadata``, a JSON object about the whole dataset, when given).

    Each shard file and the manifest are flushed to disk (``fsync``) before the next step. The
    directory should be fresh: :func:`write_shards` gives it a temporary one and puts it in
    place when complete.

    Attributes:
        writing: the file being written now (``None`` between files), for error messages.
    """

    def __init__(
        self,
        directory: Path,
        *,
        samples_per_shard: int | None,
        bytes_per_shard: int | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        self.samples_per_shard = samples_per_shard
        self.bytes_per_shard = bytes_per_shard
        self.metadata = dict(metadata or {})
        self.structure: str | None = None
        self.fields: dict[str, Field] = {}
        self.writing: Path | None = None
        self._pending: dict[str, list[Any]] = {}
        self._pending_count = 0
        self._pending_bytes = 0
        self._count = 0
        self._shards: list[ShardInfo] = []

    def add(self, sample: Any) -> None:
        """Append one sample; all samples must have the first sample's structure and fields."""
        structure, values = _flatten_sample(sample, self._count)
        if self.structure is None:
            fields = {name: _field_of(name, v) for name, v in values.items()}
            _check_first(structure, fields, values)
            self.structure, self.fields = structure, fields
            self._pending = {name: [] for name in values}
        self._check(structure, values)
        for name, v in values.items():
            self._pending[name].append(v)
            self._pending_bytes += len(v) if isinstance(v, (bytes, str)) else np.asarray(v).nbytes
        self._count += 1
        self._pending_count += 1
        full_count = self.samples_per_shard is not None and self._pending_count >= self.samples_per_shard
        full_bytes = self.bytes_per_shard is not None and self._pending_bytes >= self.bytes_per_shard
        if full_count or full_bytes:
            self.flush()

    def _check(self, structure: str, values: dict[str, Any]) -> None:
        where = f"sample {self._count}"
        if structure != self.structure or values.keys() != self.fields.keys():
            raise ValueError(
                f"{where} has fields {sorted(values)} ({structure}), the first sample "
                f"{sorted(self.fields)} ({self.structure}); every sample needs the same fields"
            )
        for name, v in values.items():
            got = _field_of(name, v)
            want = self.fields[name]
            if got.kind != want.kind or (
                want.kind == "array" and (got.shape, got.dtype) != (want.shape, want.dtype)
            ):
                raise ValueError(
                    f"{where} field {name!r} is {got.kind} {np.dtype(got.dtype).name} {got.shape}, "
                    f"the first sample's {want.kind} {np.dtype(want.dtype).name} {want.shape}; "
                    "fixed-shape fields must agree (store variable-size data as bytes)"
                )

    def _regions(self, n: int) -> tuple[list[bytes], dict[str, int]]:
        """The pending samples' regions, in layout order, and the variable fields' data lengths."""
        regions, lengths = [], {}
        for name, field in self.fields.items():
            values = self._pending[name]
            if field.kind == "array":
                stacked = np.stack([np.asarray(v, dtype=field.dtype) for v in values])
                regions.append(np.ascontiguousarray(stacked).tobytes())
                continue
            encoded = [v.encode() if isinstance(v, str) else v for v in values]
            ends = np.zeros(n + 1, dtype="<i8")
            np.cumsum([len(e) for e in encoded], out=ends[1:])
            regions += [ends.tobytes(), b"".join(encoded)]
            lengths[name] = int(ends[-1])
        return regions, lengths

    def flush(self) -> None:
        """Write the pending samples as one shard now (nothing if there are none)."""
        n = self._pending_count
        if n == 0:
            return
        name = f"shard-{len(self._shards):05d}.tts"
        regions, lengths = self._regions(n)
        offsets, nbytes = shard_layout(tuple(self.fields.values()), n, lengths)
        starts = sorted(offsets.values())
        sha, crc = hashlib.sha256(), 0
        self.writing = self.directory / name
        with open(self.writing, "xb") as f:
            for start, data in zip(starts, regions, strict=True):
                assert f.tell() == start  # the layout rule and the writer agree
                padding = b"\0" * (aligned(start + len(data)) - start - len(data))
                for part in (data, padding):
                    f.write(part)
                    sha.update(part)
                    crc = zlib.crc32(part, crc)
            assert f.tell() == nbytes
            f.flush()
            os.fsync(f.fileno())
        self.writing = None
        self._shards.append(ShardInfo(name, n, nbytes, sha.hexdigest(), offsets, crc))
        self._pending = {k: [] for k in self.fields}
        self._pending_count = 0
        self._pending_bytes = 0

    def close(self) -> Manifest:
        """Flush the last shard and write the manifest (flushed to disk); returns it."""
        self.flush()
        if self.structure is None:
            raise ValueError("write_shards got no samples; a shard dataset needs at least one")
        manifest = Manifest(self.structure, tuple(self.fields.values()), tuple(self._shards), self.metadata)
        self.writing = self.directory / MANIFEST
        with open(self.writing, "x") as f:
            f.write(json.dumps(manifest.to_json(), indent=1))
            f.flush()
            os.fsync(f.fileno())
        _fsync_directory(self.directory)
        self.writing = None
        return manifest


def owned_names(directory: Path) -> set[str]:
    """The entries of ``directory`` that are this library's to delete: its ``manifest.json``
    and the shard files that manifest lists, when the manifest is one this library wrote
    (format ``tinytorch-shards``, its checksum holding where it has one); else none.

    A damaged dataset whose manifest still reads is replaceable; a ``manifest.json`` of
    someone else's, or files named like shards without one, are never taken for ours.
    """
    try:
        raw = json.loads(read_regular(directory / MANIFEST))
    except (OSError, ValueError, RecursionError):  # missing, unreadable, not JSON: not ours
        return set()
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        return set()
    if "checksum" in raw and raw["checksum"] != manifest_checksum(raw):
        return set()
    shards = raw.get("shards")
    listed = {s.get("file") for s in shards if isinstance(s, dict)} if isinstance(shards, list) else set()
    return {MANIFEST} | {name for name in listed if isinstance(name, str) and _SHARD_FILE.fullmatch(name)}


def _foreign_entries(directory: Path) -> list[str]:
    """Entries of ``directory`` that are not ours to delete (see :func:`owned_names`); a
    directory is never ours, whatever its name."""
    owned = owned_names(directory)
    with os.scandir(directory) as entries:
        return sorted(e.name for e in entries if e.name not in owned or e.is_dir(follow_symlinks=False))


def resolve_target(target: str | os.PathLike[str]) -> Path:
    """``target``, or, when it is a symlink, the path it points to (written through, so the
    link keeps pointing at the dataset)."""
    path = Path(target)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def check_replaceable(target: Path, *, overwrite: bool) -> None:
    """Refuse a target that is not new, empty, or (with ``overwrite``) a shard dataset this
    library wrote with nothing else in it: the library never deletes files it did not write.
    A symlink is checked as the directory it points to.

    Raises:
        FileExistsError: what is in the way, and what to do.
    """
    target = resolve_target(target)
    if not target.exists():
        return
    if not target.is_dir():
        raise FileExistsError(f"{target} is a file, not a directory; choose a directory for the shards")
    foreign = _foreign_entries(target)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        why = (
            f" (its {MANIFEST} is not one write_shards wrote, or was changed since: it does not read "
            f"as a {FORMAT} manifest with a matching checksum)"
            if MANIFEST in foreign
            else ""
        )
        raise FileExistsError(
            f"{target} holds files write_shards did not write ({shown}){why}; it replaces only a "
            f"shard dataset it wrote, deleting only its {MANIFEST} and the shard files that lists. "
            "Choose a new or empty directory, or move those files"
        )
    if (target / MANIFEST).exists() and not overwrite:
        raise FileExistsError(
            f"{target} already holds a shard dataset; pass overwrite=True to replace it, or "
            "choose another directory"
        )


def exchange_entries(a: Path, b: Path) -> bool:
    """Swap two directory entries atomically (Linux ``renameat2``); ``False`` where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):
        return False
    raise OSError(code, f"could not exchange {a} and {b}: {os.strerror(code)}")


def _remove_ours(directory: Path) -> None:
    """Delete the old dataset's own files (:func:`owned_names`) from ``directory``, then the
    directory; anything else (only what appeared after the last check, or a file that could not
    be deleted) is left there, with a warning naming it."""
    owned = owned_names(directory) - {MANIFEST}
    for name in [*sorted(owned), MANIFEST]:  # the manifest last: it says what is ours
        path = directory / name
        if not path.is_dir():
            with contextlib.suppress(OSError):  # what is left is named below
                os.unlink(path)
    try:
        os.rmdir(directory)
    except OSError:
        warnings.warn(
            f"the replaced shard dataset was moved to {directory}, which still holds "
            f"{', '.join(sorted(os.listdir(directory)))}: files write_shards did not write (or "
            "could not delete) appeared there during the write; it was left for you to check",
            stacklevel=3,
        )


@contextmanager
def replacing_directory(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """A fresh temporary sibling of ``target`` to write a dataset into; on a normal exit it
    takes ``target``'s place, on an exception it is removed and ``target`` is untouched.

    Checked first (:func:`check_replaceable`) and again just before the swap; the swap is one
    atomic exchange where the filesystem allows (otherwise, for an existing target, two
    renames: a crash between them leaves the old dataset as ``.NAME.old-XXXXXXXX``). Only then
    is the old dataset removed (only its ``manifest.json`` and the shard files that lists: the
    checks refused a target holding anything else). A failure leaves ``target`` as it was, no
    temporary directory, and none of the parent directories it had to create.

    A symlinked ``target`` is resolved first (:func:`resolve_target`): the temporary directory
    and the swap are beside the directory it points to, and the link is left as it is.

    Raises:
        FileExistsError: see :func:`check_replaceable`.
    """
    target = resolve_target(target)
    check_replaceable(target, overwrite=overwrite)
    _warn_about_leftovers(target)
    created = _missing_parents(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    temporary = target.parent / f".{target.name}.tmp-{token}"
    try:
        temporary.mkdir()
        try:
            yield temporary
            check_replaceable(target, overwrite=overwrite)  # nothing new appeared meanwhile
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)  # ours alone: created above, never shared
            raise
        replaced = _swap(temporary, target, token)
    except BaseException:
        for directory in created:  # deepest first; only if still empty
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    if replaced is not None:
        _remove_ours(replaced)
    _fsync_directory(target.parent)


def _warn_about_leftovers(target: Path) -> None:
    """Warn about temporary siblings of ``target`` that a killed write left (``SIGKILL`` or a
    power cut run no cleanup). They are not deleted: one may belong to a write still running."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(tmp|old)-[0-9a-f]{{8}}")
    try:
        with os.scandir(target.parent) as entries:
            left = sorted(e.name for e in entries if pattern.fullmatch(e.name))
    except OSError:  # no parent yet: nothing left there
        return
    if left:
        warnings.warn(
            f"{target.parent} holds {', '.join(left)}: what a write of a shard dataset into "
            f"{target.name} left when it was killed before it finished. Nothing reads it; delete "
            "it once no other write into that directory is running",
            stacklevel=5,  # the caller of write_shards
        )


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and its missing ancestors, deepest first (what ``mkdir(parents=True)`` creates)."""
    missing = []
    while not path.exists() and path.parent != path:
        missing.append(path)
        path = path.parent
    return missing


def _swap(temporary: Path, target: Path, token: str) -> Path | None:
    """Put ``temporary`` at ``target``; returns where the old ``target`` went (``None``: there
    was none). On failure ``target`` is as before and ``temporary`` is removed."""
    try:
        if not target.exists():
            os.rename(temporary, target)
            return None
        if exchange_entries(temporary, target):
            return temporary
        old = target.parent / f".{target.name}.old-{token}"
        os.rename(target, old)
        try:
            os.rename(temporary, target)
        except BaseException:
            os.rename(old, target)
            raise
        return old
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
