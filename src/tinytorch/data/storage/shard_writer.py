"""Writing shard datasets: :class:`ShardWriter` fills a directory, :func:`replacing_directory`
puts it in place of the target only once it is complete.

A new dataset is written into a temporary sibling of its target (``.NAME.tmp-XXXXXXXX``); only
when every shard and the manifest are written and flushed to disk does it take the target's
name, in one atomic exchange (``renameat2(RENAME_EXCHANGE)``; two renames where the filesystem
lacks it). The old dataset is removed after that, and only the files this library writes
(``manifest.json``, ``shard-NNNNN.tts``), so a failed write (an exception in the source, a
full disk, an interrupt) leaves the old dataset as it was and no temporary files.
"""

from __future__ import annotations

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

from tinytorch.data.storage.shards import (
    MANIFEST,
    Field,
    Manifest,
    ShardInfo,
    aligned,
    shard_layout,
)

__all__ = ["ShardWriter", "check_replaceable", "exchange_entries", "replacing_directory"]

# The only names write_shards ever leaves in a dataset directory (and the temporary files of
# earlier versions, which wrote in place): nothing else is ever deleted.
_OURS = re.compile(r"manifest\.json|shard-\d{5,}\.tts|\.shard-\d{5,}\.tts\.tmp|\.manifest\.json\.tmp")


def _flatten_sample(sample: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(sample, Mapping):
        return "dict", {str(k): v for k, v in sample.items()}
    if isinstance(sample, (tuple, list)):
        return "tuple", {str(i): v for i, v in enumerate(sample)}
    return "array", {"0": sample}


def _field_of(name: str, value: Any) -> Field:
    if isinstance(value, bytes):
        return Field(name, "bytes")
    if isinstance(value, str):
        return Field(name, "str")
    array = np.asarray(value)
    if array.dtype.hasobject or array.dtype.kind in "OUS":
        raise TypeError(
            f"field {name!r}: cannot store {type(value).__name__} values in shards; "
            "store numpy arrays, numbers, bytes or str"
        )
    return Field(name, "array", array.dtype.str, array.shape)


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
        structure, values = _flatten_sample(sample)
        if self.structure is None:
            fields = {name: _field_of(name, v) for name, v in values.items()}
            regions = [*fields, *(f"{n}.data" for n, f in fields.items() if f.kind != "array")]
            if len(set(regions)) != len(regions):
                raise ValueError(
                    f"sample 0 has fields {sorted(fields)}: a bytes or str field 'x' also stores "
                    "'x.data', so no other field may have that name; rename it"
                )
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


def _foreign_entries(target: Path) -> list[str]:
    return sorted(name for name in os.listdir(target) if not _OURS.fullmatch(name))


def check_replaceable(target: Path, *, overwrite: bool) -> None:
    """Refuse a target that is not new, empty, an unfinished write, or (with ``overwrite``) a
    shard dataset: the library never deletes files it did not write.

    Raises:
        FileExistsError: what is in the way, and what to do.
    """
    if not target.exists():
        return
    if not target.is_dir():
        raise FileExistsError(f"{target} is a file, not a directory; choose a directory for the shards")
    foreign = _foreign_entries(target)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileExistsError(
            f"{target} holds files write_shards did not write ({shown}); it replaces only a shard "
            "dataset it wrote. Choose a new or empty directory, or move those files"
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
    """Delete the files this library writes from ``directory``, then the directory if empty."""
    for name in os.listdir(directory):
        if _OURS.fullmatch(name):
            os.unlink(directory / name)
    try:
        os.rmdir(directory)
    except OSError:
        warnings.warn(
            f"{directory} (the replaced shard dataset) still holds files write_shards did not "
            f"write ({', '.join(_foreign_entries(directory))}); it was left in place",
            stacklevel=3,
        )


@contextmanager
def replacing_directory(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """A fresh temporary sibling of ``target`` to write a dataset into; on a normal exit it
    takes ``target``'s place, on an exception it is removed and ``target`` is untouched.

    Checked first (:func:`check_replaceable`) and again just before the swap; the swap is one
    atomic exchange where the filesystem allows (otherwise, for an existing target, two
    renames: a crash between them leaves the old dataset as ``.NAME.old-XXXXXXXX``). Only then
    is the old dataset removed (only its ``manifest.json`` and ``shard-NNNNN.tts`` files).

    Raises:
        FileExistsError: see :func:`check_replaceable`.
    """
    target = Path(target)
    check_replaceable(target, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    temporary = target.parent / f".{target.name}.tmp-{token}"
    temporary.mkdir()
    try:
        yield temporary
        check_replaceable(target, overwrite=overwrite)  # nothing new appeared meanwhile
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)  # ours alone: created above, never shared
        raise
    replaced = _swap(temporary, target, token)
    if replaced is not None:
        _remove_ours(replaced)
    _fsync_directory(target.parent)


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
