"""The tinytorch shard format: a directory of shard files and a JSON manifest.

Layout of ``DIR/``::

    manifest.json            written last: its presence means complete
    shard-00000.tts          field regions, each starting on a multiple of 64 bytes
    shard-00001.tts
    ...

The manifest records the format version, the sample structure (``tuple``, ``dict`` or
``array``), every field (name, kind, dtype, per-sample shape), per shard its file name, sample
count, byte size, SHA-256, CRC-32 and the byte offset of each field region, optionally the
writer's ``metadata`` (a JSON object about the whole dataset, e.g. an image folder's class
names), and the SHA-256 of all that (``checksum``: of the manifest's other keys as compact JSON
with sorted keys), so that a manifest changed after writing is refused even where its numbers
still agree. Fixed-shape fields (``kind="array"``) are stored as one contiguous ``(n, *shape)``
array, so a shard is read by memory-mapping it; variable-size fields (``kind="bytes"`` or
``"str"``) are stored as an ``(n + 1,)`` little-endian int64 array of end offsets (the first is
0) followed by the concatenated values. Where each region starts follows from the fields, the
sample count and the variable fields' data lengths alone (:func:`shard_layout`): the writer
places regions with it, and the reader checks every number of the manifest against it, and
against the files' real sizes, before mapping anything (a manifest is untrusted input).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.data.storage.regular_files import NotRegularFileError, read_regular

__all__ = [
    "ALIGN",
    "FORMAT",
    "MANIFEST",
    "VERSION",
    "CorruptShardError",
    "Field",
    "Manifest",
    "ShardError",
    "ShardInfo",
    "check_layout",
    "field_problem",
    "fields_problem",
    "manifest_checksum",
    "parse_manifest",
    "read_manifest",
    "record_bytes",
    "shard_layout",
]

FORMAT = "tinytorch-shards"
VERSION = 1
ALIGN = 64
MANIFEST = "manifest.json"
STRUCTURES = ("tuple", "dict", "array")
KINDS = ("array", "bytes", "str")
# Array dtypes a shard may hold: numbers, bools, datetimes and raw bytes (never objects).
_ARRAY_KINDS = "biufcmMV"
_MAX_RECORD = 1 << 40  # bytes per sample of one field: anything larger is not a real record
_MAX_SAMPLES = 1 << 48  # per shard and in total (index arithmetic stays exact in int64)
_MAX_NDIM = 32
_SHA256 = re.compile(r"[0-9a-f]{64}")
REWRITE = "Rewrite the dataset with write_shards(..., overwrite=True)"


class ShardError(ValueError):
    """A shard dataset is incomplete, corrupt or of an unknown format; the message names what."""


class CorruptShardError(ShardError):
    """A shard dataset's manifest or files disagree with themselves or with each other.

    Raised before anything is mapped or read (at open), when a file changes while in use, and
    when a checksum does not match. The message names the file and the field, what was expected
    and what was found.

    Attributes:
        path: the file (a shard file or ``manifest.json``).
        field: what in it (e.g. ``"size"``, ``"shards[1].offsets['0']"``, ``"crc32"``).
        expected, found: the two values, as text.
        fix: what to do.

    Built from one message alone (``CorruptShardError(message)``, as worker errors are
    re-raised in the loading process) the attributes are ``None`` and the original error is
    the ``__cause__``.
    """

    def __init__(
        self,
        path: str | Path,
        field: str | None = None,
        expected: str | None = None,
        found: str | None = None,
        fix: str = REWRITE,
    ) -> None:
        self.path: str | None = None if field is None else str(path)
        self.field: str | None = field
        self.expected: str | None = expected
        self.found: str | None = found
        self.fix = fix
        if field is None:  # a message alone
            super().__init__(str(path))
        else:  # the args pickle the error whole
            super().__init__(str(path), field, expected, found, fix)

    def __str__(self) -> str:
        if self.field is None:
            return str(self.args[0])
        return f"{self.path}: {self.field} is {self.found}, expected {self.expected}. {self.fix}"


@dataclass(frozen=True)
class Field:
    """One field of every sample.

    ``kind`` is ``"array"`` (every sample a ``shape`` array of ``dtype``), ``"bytes"`` or
    ``"str"`` (variable length; ``dtype`` and ``shape`` are then unused: ``"|u1"`` and ``()``).
    """

    name: str
    kind: str
    dtype: str = "|u1"
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class ShardInfo:
    """One shard file: name, sample count, size, checksums and field region offsets.

    ``crc32`` is ``None`` in manifests written before it was recorded.
    """

    file: str
    samples: int
    nbytes: int
    sha256: str
    offsets: dict[str, int]
    crc32: int | None = None


@dataclass(frozen=True)
class Manifest:
    """The parsed and checked ``manifest.json``.

    ``metadata`` is the writer's JSON object about the whole dataset (``{}`` when none; not
    written then, so manifests without it are unchanged); the manifest's checksum covers it.
    """

    structure: str
    fields: tuple[Field, ...]
    shards: tuple[ShardInfo, ...]
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(s.samples for s in self.shards)

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON values, with its ``checksum``."""
        raw = {
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
                    **({} if s.crc32 is None else {"crc32": s.crc32}),
                    "offsets": s.offsets,
                }
                for s in self.shards
            ],
            **({"metadata": dict(self.metadata)} if self.metadata else {}),
        }
        return {**raw, "checksum": manifest_checksum(raw)}


def manifest_checksum(raw: Mapping[str, Any]) -> str:
    """SHA-256 of a manifest's keys other than ``checksum``, as compact JSON with sorted keys."""
    rest = {k: v for k, v in raw.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def record_bytes(field: Field) -> int:
    """Bytes per sample of a fixed-shape field (0 for variable-size fields)."""
    if field.kind != "array":
        return 0
    return np.dtype(field.dtype).itemsize * math.prod(field.shape)


def aligned(n: int) -> int:
    """``n`` rounded up to a multiple of :data:`ALIGN`."""
    return -(-n // ALIGN) * ALIGN


def shard_layout(
    fields: tuple[Field, ...], samples: int, data_lengths: Mapping[str, int]
) -> tuple[dict[str, int], int]:
    """Where each region of a shard starts, and the shard's size: the format's one layout rule.

    Regions follow the fields' order, each starting on the next multiple of :data:`ALIGN`; a
    variable-size field ``f`` has two: its ``(samples + 1,)`` int64 end offsets (key ``f``), then
    its ``data_lengths[f]`` bytes of values (key ``f + ".data"``).

    Returns:
        ``(offsets, nbytes)``: region name -> byte offset, and the file size.
    """
    offsets: dict[str, int] = {}
    position = 0
    for field in fields:
        offsets[field.name] = position
        if field.kind == "array":
            position = aligned(position + samples * record_bytes(field))
        else:
            position = aligned(position + 8 * (samples + 1))
            offsets[field.name + ".data"] = position
            position = aligned(position + data_lengths[field.name])
    return offsets, position


def check_layout(
    manifest_path: Path,
    k: int,
    info: ShardInfo,
    fields: tuple[Field, ...],
    data_lengths: Mapping[str, int] | None = None,
) -> None:
    """Check shard ``k``'s offsets and size against its fields and sample count.

    With ``data_lengths`` (each variable field's data length, the last of its end offsets, read
    from the file) the check is exact: the offsets and size must be :func:`shard_layout`'s.
    Without (the manifest alone), each variable field's data may end anywhere before the next
    region, so the next region's offset is taken as given: everything else is still exact.

    Raises:
        CorruptShardError: naming the shard, the region and both numbers.
    """
    where = f"shards[{k}] ({info.file})"
    position = 0

    def expect(key: str, found: int, expected: int, reason: str) -> None:
        if found != expected:
            raise CorruptShardError(
                manifest_path, f"{where} offsets[{key!r}]", f"{expected} ({reason})", str(found)
            )

    previous = ""
    for i, field in enumerate(fields):
        expect(
            field.name,
            info.offsets[field.name],
            position,
            f"right after {previous}" if previous else "the start",
        )
        if field.kind == "array":
            size = info.samples * record_bytes(field)
            position = aligned(position + size)
            previous = f"field {field.name!r}: {info.samples} samples x {record_bytes(field)} bytes"
            continue
        position = aligned(position + 8 * (info.samples + 1))
        expect(
            field.name + ".data",
            info.offsets[field.name + ".data"],
            position,
            f"right after the {info.samples + 1} end offsets of field {field.name!r}",
        )
        if data_lengths is not None:
            position = aligned(position + data_lengths[field.name])
            previous = f"field {field.name!r}'s {data_lengths[field.name]} bytes of values"
            continue
        following = info.offsets[fields[i + 1].name] if i + 1 < len(fields) else info.nbytes
        if following < position or following % ALIGN:
            what = f"offsets[{fields[i + 1].name!r}]" if i + 1 < len(fields) else "bytes"
            raise CorruptShardError(
                manifest_path,
                f"{where} {what}",
                f"a multiple of {ALIGN} at least {position} (after field {field.name!r}'s end offsets)",
                str(following),
            )
        position = following
        previous = f"field {field.name!r}'s values"
    if info.nbytes != position:
        raise CorruptShardError(
            manifest_path, f"{where} bytes", f"{position} (the end of {previous})", str(info.nbytes)
        )


def read_manifest(directory: Path) -> Manifest:
    """Read, parse and check ``directory/manifest.json`` (see :func:`parse_manifest`).

    Raises:
        ShardError: no manifest (an unfinished write looks like this) or another format version.
        CorruptShardError: not JSON, or JSON that is not a consistent manifest.
    """
    path = directory / MANIFEST
    try:
        text = read_regular(path)
    except FileNotFoundError:
        raise ShardError(
            f"{directory} holds no {MANIFEST}: it is not a shard dataset, or its writing did not "
            "finish (the manifest is written last). Write it again with write_shards()"
        ) from None
    except NotADirectoryError:
        raise ShardError(f"{directory} is not a directory: a shard dataset is a directory") from None
    except NotRegularFileError as e:
        raise CorruptShardError(path, "file type", "a regular file", e.kind) from e
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CorruptShardError(path, "content", "a JSON object", f"not valid JSON ({e})") from e
    return parse_manifest(raw, path)


def parse_manifest(raw: object, path: Path) -> Manifest:
    """Check a decoded manifest's shape, types and numbers, and return it.

    Every value is checked before it is used: the manifest's ``checksum`` where it has one
    (manifests written before it existed have none), types (ints are ints, not floats or bools), ranges
    (nothing negative), file names (plain names inside the dataset directory: no ``/``, ``..``
    or leading ``.``), field names against the structure, dtypes (numbers, bools, dates or raw
    bytes; never Python objects), each shard's offsets and size against its fields and
    sample count (:func:`check_layout`), and ``metadata``, where present, is a JSON object
    (what its values mean is checked by whoever reads them).

    Raises:
        ShardError: another format or format version.
        CorruptShardError: anything else; the message names the key, expected and found.
    """
    top = _mapping(raw, path, "the manifest")
    if top.get("format") != FORMAT:
        raise ShardError(f"{path} is not a {FORMAT} manifest (format {top.get('format')!r})")
    if top.get("version") != VERSION:
        raise ShardError(
            f"{path} has format version {top.get('version')!r}; this tinytorch reads version "
            f"{VERSION}. Rewrite the shards with this version, or upgrade tinytorch"
        )
    if "checksum" in top and top["checksum"] != manifest_checksum(top):
        raise CorruptShardError(
            path,
            "checksum",
            f"{manifest_checksum(top)} (the SHA-256 of its other keys)",
            f"{top['checksum']!r}: the manifest was changed after it was written",
            f"{REWRITE}; if you edited it on purpose, delete its 'checksum' key",
        )
    structure = _key(top, "structure", path, "the manifest")
    if structure not in STRUCTURES:
        raise CorruptShardError(path, "structure", " or ".join(map(repr, STRUCTURES)), repr(structure))
    fields = _fields(_key(top, "fields", path, "the manifest"), structure, path)
    raw_shards = _key(top, "shards", path, "the manifest")
    if not isinstance(raw_shards, list) or not raw_shards:
        raise CorruptShardError(path, "shards", "a non-empty list", _describe(raw_shards))
    shards = tuple(_shard(s, k, fields, path) for k, s in enumerate(raw_shards))
    names = [s.file for s in shards]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise CorruptShardError(path, "shards[*].file", "a different file for every shard", f"{twice} twice")
    metadata = _mapping(top.get("metadata", {}), path, "metadata")
    manifest = Manifest(structure, fields, shards, metadata)
    total = _int(_key(top, "samples", path, "the manifest"), path, "samples", maximum=_MAX_SAMPLES)
    if total != manifest.total:
        raise CorruptShardError(
            path, "samples", f"{manifest.total} (the sum of the shards' sample counts)", str(total)
        )
    return manifest


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _mapping(value: object, path: Path, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CorruptShardError(path, what, "a JSON object", _describe(value))
    return value


def _key(mapping: dict[str, Any], key: str, path: Path, what: str) -> Any:
    if key not in mapping:
        raise CorruptShardError(path, f"{what}'s key {key!r}", "present", "missing")
    return mapping[key]


def _int(value: object, path: Path, what: str, *, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CorruptShardError(path, what, "an int", _describe(value))
    if value < 0 or (maximum is not None and value > maximum):
        bound = "a non-negative int" + ("" if maximum is None else f" at most {maximum}")
        raise CorruptShardError(path, what, bound, str(value))
    return value


def _str(value: object, path: Path, what: str) -> str:
    if not isinstance(value, str):
        raise CorruptShardError(path, what, "a string", _describe(value))
    return value


def field_problem(field: Field) -> tuple[str, str, str] | None:
    """What of ``field`` a reader refuses, as ``(part, expected, found)``, or ``None``.

    The format's one rule for a field, checked by the reader on every manifest and by the
    writer on the first sample (so nothing is written that cannot be read back): ``kind`` is
    ``"array"``, ``"bytes"`` or ``"str"``; an array field has a numpy dtype of numbers, bools,
    dates or raw bytes (never Python objects or numpy strings), at most :data:`_MAX_NDIM`
    dimensions, none above :data:`_MAX_RECORD`, and at most :data:`_MAX_RECORD` bytes per
    sample; a variable-size field has dtype ``"|u1"`` and shape ``()``.
    """
    if field.kind not in KINDS:
        return "kind", " or ".join(map(repr, KINDS)), repr(field.kind)
    if field.kind != "array":
        if (field.dtype, field.shape) != ("|u1", ()):
            return (
                "dtype and shape",
                f"'|u1' and [] for a {field.kind} field",
                f"{field.dtype!r} {field.shape}",
            )
        return None
    if len(field.shape) > _MAX_NDIM:
        return "shape", f"at most {_MAX_NDIM} dimensions", f"{len(field.shape)} dimensions {field.shape}"
    for j, d in enumerate(field.shape):
        if not 0 <= d <= _MAX_RECORD:
            return f"shape[{j}]", f"a non-negative int at most {_MAX_RECORD}", str(d)
    try:
        dtype = np.dtype(field.dtype)
    except (TypeError, ValueError, OverflowError):
        return "dtype", "a numpy dtype", repr(field.dtype)
    if dtype.hasobject or dtype.kind not in _ARRAY_KINDS:
        return "dtype", "a number, bool, date or raw-bytes dtype", repr(field.dtype)
    if dtype.itemsize * math.prod(field.shape) > _MAX_RECORD:
        return "dtype and shape", f"records of at most {_MAX_RECORD} bytes", f"{dtype} {field.shape}"
    return None


def fields_problem(structure: str, fields: tuple[Field, ...]) -> tuple[str, str, str] | None:
    """What of a sample's fields a reader refuses, as ``(part, expected, found)``, or ``None``.

    The format's rule for the fields together (reader and writer, as :func:`field_problem`): at
    least one; a ``tuple`` structure's names are ``"0"``, ``"1"``, ..., an ``array``'s ``"0"``;
    no name equals another's ``+ ".data"`` (a variable field ``x`` also stores region ``x.data``).
    """
    if not fields:
        return "fields", "a non-empty list", "[] (no fields)"
    names = [f.name for f in fields]
    expected = {"tuple": [str(i) for i in range(len(fields))], "array": ["0"]}.get(structure)
    if expected is not None and names != expected:
        return "fields[*].name", f"{expected} for a {structure} structure", str(names)
    regions = names + [f.name + ".data" for f in fields if f.kind != "array"]
    if len(set(regions)) != len(regions):
        return "fields[*].name", "distinct names (a variable field 'x' also uses 'x.data')", str(names)
    return None


def _fields(raw: object, structure: str, path: Path) -> tuple[Field, ...]:
    if not isinstance(raw, list):
        raise CorruptShardError(path, "fields", "a non-empty list", _describe(raw))
    fields = []
    for i, entry in enumerate(raw):
        where = f"fields[{i}]"
        f = _mapping(entry, path, where)
        name = _str(_key(f, "name", path, where), path, f"{where}.name")
        kind = _key(f, "kind", path, where)
        dtype_text = _str(_key(f, "dtype", path, where), path, f"{where}.dtype")
        raw_shape = _key(f, "shape", path, where)
        if not isinstance(raw_shape, list) or len(raw_shape) > _MAX_NDIM:
            raise CorruptShardError(
                path, f"{where}.shape", f"a list of at most {_MAX_NDIM} ints", _describe(raw_shape)
            )
        shape = tuple(_int(d, path, f"{where}.shape[{j}]") for j, d in enumerate(raw_shape))
        field = Field(name, kind, dtype_text, shape)
        problem = field_problem(field)
        if problem is not None:
            part, expected, found = problem
            raise CorruptShardError(path, f"{where}.{part}", expected, found)
        fields.append(field)
    problem = fields_problem(structure, tuple(fields))
    if problem is not None:
        raise CorruptShardError(path, *problem)
    return tuple(fields)


def _file_name(value: object, path: Path, what: str) -> str:
    name = _str(value, path, what)
    if (
        not name
        or name.startswith(".")
        or any(c in name for c in "/\\\0")
        or Path(name).name != name
        or Path(name).is_absolute()
    ):
        raise CorruptShardError(
            path, what, "a plain file name inside the dataset directory (no '/', '..' or leading '.')",
            repr(name),
        )  # fmt: skip
    return name


def _shard(raw: object, k: int, fields: tuple[Field, ...], path: Path) -> ShardInfo:
    where = f"shards[{k}]"
    s = _mapping(raw, path, where)
    file = _file_name(_key(s, "file", path, where), path, f"{where}.file")
    samples = _int(_key(s, "samples", path, where), path, f"{where}.samples", maximum=_MAX_SAMPLES)
    nbytes = _int(_key(s, "bytes", path, where), path, f"{where}.bytes")
    sha256 = _str(_key(s, "sha256", path, where), path, f"{where}.sha256")
    if not _SHA256.fullmatch(sha256):
        raise CorruptShardError(path, f"{where}.sha256", "64 lowercase hex digits", repr(sha256))
    crc32 = None if "crc32" not in s else _int(s["crc32"], path, f"{where}.crc32", maximum=0xFFFFFFFF)
    raw_offsets = _mapping(_key(s, "offsets", path, where), path, f"{where}.offsets")
    regions = [
        name for f in fields for name in ((f.name,) if f.kind == "array" else (f.name, f.name + ".data"))
    ]
    if sorted(raw_offsets) != sorted(regions):
        raise CorruptShardError(path, f"{where}.offsets", f"the keys {regions}", f"{sorted(raw_offsets)}")
    offsets = {name: _int(raw_offsets[name], path, f"{where}.offsets[{name!r}]") for name in regions}
    info = ShardInfo(file, samples, nbytes, sha256, offsets, crc32)
    check_layout(path, k, info, fields)
    return info
