"""The tinytorch shard format: a directory of shard files and a JSON manifest.

Layout of ``DIR/``::

    manifest.json            written last (temporary file + rename): its presence means complete
    shard-00000.tts          field regions, each aligned to 64 bytes
    shard-00001.tts
    ...

The manifest records the format version, the sample structure (``tuple``, ``dict`` or
``array``), every field (name, kind, dtype, per-sample shape), and per shard its file name,
sample count, byte size, SHA-256 and the byte offset of each field region. Fixed-shape fields
(``kind="array"``) are stored as one contiguous ``(n, *shape)`` array, so a shard is read by
memory-mapping it; variable-size fields (``kind="bytes"`` or ``"str"``) are stored as an
``(n + 1,)`` int64 offsets array followed by the concatenated bytes.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FORMAT",
    "VERSION",
    "Field",
    "Manifest",
    "ShardError",
    "ShardFile",
    "ShardInfo",
    "ShardWriter",
    "read_manifest",
]

FORMAT = "tinytorch-shards"
VERSION = 1
ALIGN = 64
MANIFEST = "manifest.json"


class ShardError(ValueError):
    """A shard dataset is incomplete, corrupt or of an unknown format; the message names what."""


@dataclass(frozen=True)
class Field:
    """One field of every sample: ``kind`` is ``"array"`` (fixed ``shape`` and ``dtype``),
    ``"bytes"`` or ``"str"`` (variable length)."""

    name: str
    kind: str
    dtype: str = "|u1"
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class ShardInfo:
    """One shard file: name, sample count, size, checksum and field region offsets."""

    file: str
    samples: int
    nbytes: int
    sha256: str
    offsets: dict[str, int]


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json``."""

    structure: str
    fields: tuple[Field, ...]
    shards: tuple[ShardInfo, ...]

    @property
    def total(self) -> int:
        return sum(s.samples for s in self.shards)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "structure": self.structure,
            "fields": [
                {"name": f.name, "kind": f.kind, "dtype": f.dtype, "shape": list(f.shape)}
                for f in self.fields
            ],
            "samples": self.total,
            "shards": [
                {
                    "file": s.file,
                    "samples": s.samples,
                    "bytes": s.nbytes,
                    "sha256": s.sha256,
                    "offsets": s.offsets,
                }
                for s in self.shards
            ],
        }


def read_manifest(directory: Path) -> Manifest:
    """Parse and check ``directory/manifest.json``.

    Raises:
        ShardError: missing manifest (an unfinished write looks like this), unknown format or
            version, or a malformed entry.
    """
    path = directory / MANIFEST
    if not path.is_file():
        raise ShardError(
            f"{directory} holds no {MANIFEST}: it is not a shard dataset, or its writing did not "
            "finish (the manifest is written last). Write it again with write_shards()"
        )
    try:
        raw = json.loads(path.read_text())
    except ValueError as e:
        raise ShardError(f"{path} is not valid JSON ({e})") from e
    if raw.get("format") != FORMAT:
        raise ShardError(f"{path} is not a {FORMAT} manifest (format {raw.get('format')!r})")
    if raw.get("version") != VERSION:
        raise ShardError(
            f"{path} has format version {raw.get('version')!r}; this tinytorch reads version "
            f"{VERSION}. Rewrite the shards with this version, or upgrade tinytorch"
        )
    try:
        fields = tuple(Field(f["name"], f["kind"], f["dtype"], tuple(f["shape"])) for f in raw["fields"])
        shards = tuple(
            ShardInfo(
                s["file"],
                int(s["samples"]),
                int(s["bytes"]),
                s["sha256"],
                {k: int(v) for k, v in s["offsets"].items()},
            )
            for s in raw["shards"]
        )
        return Manifest(raw["structure"], fields, shards)
    except (KeyError, TypeError, ValueError) as e:
        raise ShardError(f"{path} is malformed ({type(e).__name__}: {e})") from e


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


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


class ShardWriter:
    """Writes samples shard by shard; :meth:`close` writes the manifest (atomically, last)."""

    def __init__(
        self, directory: Path, *, samples_per_shard: int | None, bytes_per_shard: int | None
    ) -> None:
        self.directory = directory
        self.samples_per_shard = samples_per_shard
        self.bytes_per_shard = bytes_per_shard
        self.structure: str | None = None
        self.fields: dict[str, Field] = {}
        self._pending: dict[str, list[Any]] = {}
        self._pending_bytes = 0
        self._count = 0
        self._shards: list[ShardInfo] = []

    def add(self, sample: Any) -> None:
        """Append one sample; all samples must have the first sample's structure and fields."""
        structure, values = _flatten_sample(sample)
        if self.structure is None:
            self.structure = structure
            self.fields = {name: _field_of(name, v) for name, v in values.items()}
            self._pending = {name: [] for name in values}
        self._check(structure, values)
        for name, v in values.items():
            self._pending[name].append(v)
            self._pending_bytes += len(v) if isinstance(v, (bytes, str)) else np.asarray(v).nbytes
        self._count += 1
        full_count = (
            self.samples_per_shard is not None
            and len(self._pending[next(iter(self._pending))]) >= self.samples_per_shard
        )
        full_bytes = self.bytes_per_shard is not None and self._pending_bytes >= self.bytes_per_shard
        if full_count or full_bytes:
            self._flush()

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

    def _flush(self) -> None:
        n = len(next(iter(self._pending.values()))) if self._pending else 0
        if n == 0:
            return
        name = f"shard-{len(self._shards):05d}.tts"
        temporary = self.directory / f".{name}.tmp"
        offsets: dict[str, int] = {}
        digest = hashlib.sha256()
        position = 0
        with open(temporary, "wb") as f:

            def put(data: bytes) -> None:
                nonlocal position
                f.write(data)
                digest.update(data)
                position += len(data)
                padding = _aligned(position) - position
                f.write(b"\0" * padding)
                digest.update(b"\0" * padding)
                position += padding

            for field_name, field in self.fields.items():
                values = self._pending[field_name]
                offsets[field_name] = position
                if field.kind == "array":
                    array = np.ascontiguousarray(np.stack([np.asarray(v, dtype=field.dtype) for v in values]))
                    put(array.tobytes())
                else:
                    encoded = [v.encode() if isinstance(v, str) else v for v in values]
                    ends = np.zeros(n + 1, dtype=np.int64)
                    np.cumsum([len(e) for e in encoded], out=ends[1:])
                    put(ends.tobytes())
                    offsets[field_name + ".data"] = position
                    put(b"".join(encoded))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.directory / name)
        self._shards.append(ShardInfo(name, n, position, digest.hexdigest(), offsets))
        self._pending = {k: [] for k in self.fields}
        self._pending_bytes = 0

    def close(self) -> Manifest:
        """Flush the last shard and write the manifest; returns it."""
        self._flush()
        if self.structure is None:
            raise ValueError("write_shards got no samples; a shard dataset needs at least one")
        manifest = Manifest(self.structure, tuple(self.fields.values()), tuple(self._shards))
        temporary = self.directory / f".{MANIFEST}.tmp"
        temporary.write_text(json.dumps(manifest.to_json(), indent=1))
        os.replace(temporary, self.directory / MANIFEST)
        return manifest


class ShardFile:
    """One shard, memory-mapped; fields are numpy views of the file (read-only)."""

    def __init__(self, directory: Path, info: ShardInfo, fields: tuple[Field, ...], *, verify: bool) -> None:
        path = check_shard(directory, info, checksum=verify)
        self.info = info
        self._map: NDArray[np.uint8] = _map_file(path, info.nbytes)
        self.columns: dict[str, Any] = {}
        for field in fields:
            start = info.offsets[field.name]
            if field.kind == "array":
                dtype = np.dtype(field.dtype)
                count = info.samples * int(np.prod(field.shape, dtype=np.int64))
                flat = np.frombuffer(self._map, dtype=dtype, count=count, offset=start)
                self.columns[field.name] = flat.reshape((info.samples, *field.shape))
            else:
                ends = np.frombuffer(self._map, dtype=np.int64, count=info.samples + 1, offset=start)
                data_start = info.offsets[field.name + ".data"]
                self.columns[field.name] = (ends, data_start, field.kind == "str")

    def variable(self, name: str, rows: NDArray[np.intp]) -> list[Any]:
        """Items ``rows`` of a variable-size field."""
        ends, data_start, text = self.columns[name]
        out = []
        for r in rows.tolist():
            raw = self._map[data_start + ends[r] : data_start + ends[r + 1]].tobytes()
            out.append(raw.decode() if text else raw)
        return out


def _map_file(path: Path, size: int) -> NDArray[np.uint8]:
    """Map a shard read-only, its page-table entries filled at once (``MAP_POPULATE``).

    Touching a page of a plain mapping for the first time costs a page fault (about a
    microsecond) even when the data is in the page cache, and a shard has thousands of pages.
    Filling the mapping when the shard is opened costs one sequential pass instead, which also
    reads the shard ahead from disk when it is not cached.
    """
    if size == 0:
        return np.empty(0, dtype=np.uint8)
    with open(path, "rb") as f:
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mapped = mmap.mmap(f.fileno(), size, flags=flags, prot=mmap.PROT_READ)
    return np.frombuffer(mapped, dtype=np.uint8)


def check_shard(directory: Path, info: ShardInfo, *, checksum: bool) -> Path:
    """The shard's path, after checking that it exists with the manifest's size and, with
    ``checksum``, the manifest's SHA-256 (which reads the whole file).

    Raises:
        ShardError: missing, truncated or replaced, or corrupt; the message names the shard.
    """
    path = directory / info.file
    if not path.is_file():
        raise ShardError(f"shard {info.file} is missing from {directory}")
    size = path.stat().st_size
    if size != info.nbytes:
        raise ShardError(
            f"shard {info.file} has {size} bytes, the manifest says {info.nbytes}: it is truncated "
            "or was replaced. Rewrite the dataset"
        )
    if checksum:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        if digest.hexdigest() != info.sha256:
            raise ShardError(
                f"shard {info.file} in {directory} has sha256 {digest.hexdigest()}, the manifest says "
                f"{info.sha256}: the file is corrupt. Rewrite the dataset"
            )
    return path
