"""CIFAR files in the exact official layout: Python 2 pickles with byte-string keys.

Python 3's pickler writes ``bytes`` through ``_codecs.encode``; the official files were written
by Python 2, whose ``str`` pickles as (SHORT_)BINSTRING and whose numpy arrays reference
``numpy.core.multiarray._reconstruct``. :func:`py2_pickle` writes exactly those opcodes.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import struct
import tarfile

import numpy as np


def _string(value: bytes) -> bytes:
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<i", len(value)) + value


def _int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    return b"J" + struct.pack("<i", value)


def _dtype(dtype: np.dtype) -> bytes:
    return (
        b"cnumpy\ndtype\n"
        + _string(dtype.str[1:].encode())
        + _int(0)
        + _int(1)
        + b"\x87R"
        + b"("
        + _int(3)
        + _string(b"|" if dtype.itemsize == 1 else b"<")
        + b"NNN"
        + _int(-1)
        + _int(-1)
        + _int(0)
        + b"tb"
    )


def _array(a: np.ndarray) -> bytes:
    shape = b"(" + b"".join(_int(d) for d in a.shape) + b"t"
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + _int(0)
        + b"\x85"
        + _string(b"b")
        + b"\x87R"
        + b"("
        + _int(1)
        + shape
        + _dtype(a.dtype)
        + b"\x89"
        + _string(np.ascontiguousarray(a).tobytes())
        + b"tb"
    )


def _value(v: object) -> bytes:
    if isinstance(v, np.ndarray):
        return _array(v)
    if isinstance(v, bytes):
        return _string(v)
    if isinstance(v, bool):
        return b"\x88" if v else b"\x89"
    if isinstance(v, int):
        return _int(v)
    if isinstance(v, list):
        return b"](" + b"".join(_value(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"}(" + b"".join(_value(k) + _value(x) for k, x in v.items()) + b"u"
    raise TypeError(type(v))


def py2_pickle(obj: object) -> bytes:
    """Pickle ``obj`` (dict/list/int/bytes/uint8 arrays) the way Python 2 + numpy 1 did."""
    return b"\x80\x02" + _value(obj) + b"."


def cifar10_files(per_batch: int = 20, seed: int = 0) -> dict[str, bytes]:
    """The files of ``cifar-10-batches-py`` with ``per_batch`` images per batch file.

    Image ``j`` of the whole train split is filled with a value derived from its label, so tests
    can check that images and labels stay aligned.
    """
    rng = np.random.default_rng(seed)
    files = {}
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for name in names:
        labels = rng.integers(0, 10, size=per_batch).tolist()
        data = np.repeat(np.array(labels, dtype=np.uint8)[:, None] * 20, 3072, axis=1)
        data[:, 0] = rng.integers(0, 256, size=per_batch, dtype=np.uint8)
        files[name] = py2_pickle(
            {
                b"batch_label": name.encode(),
                b"labels": labels,
                b"data": data,
                b"filenames": [f"img{j}.png".encode() for j in range(per_batch)],
            }
        )
    classes = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    files["batches.meta"] = py2_pickle(
        {b"label_names": classes, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    )
    return files


def cifar100_files(train: int = 50, test: int = 10, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {}
    for name, n in (("train", train), ("test", test)):
        fine = rng.integers(0, 100, size=n).tolist()
        files[name] = py2_pickle(
            {
                b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine],
                b"filenames": [b"x"] * n,
            }
        )
    files["meta"] = py2_pickle(
        {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        }
    )
    return files


def make_tar(members: dict[str, bytes], folder: str | None = None) -> bytes:
    """A .tar.gz holding ``members`` (under ``folder/`` when given), plus the folder entry."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        if folder:
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}" if folder else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def is_mapped(array: np.ndarray) -> bool:
    """Whether ``array`` views a memory mapping (through views, buffers and ``np.memmap``)."""
    base: object = array
    while base is not None:
        if isinstance(base, (mmap.mmap, np.memmap)):
            return True
        base = getattr(base, "obj", None) if isinstance(base, memoryview) else getattr(base, "base", None)
    return False
