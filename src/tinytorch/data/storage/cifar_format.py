"""The CIFAR-10 / CIFAR-100 "python version" files: what they are and how to read them.

Each batch file is a Python 2 pickle of a dict with byte-string keys:
``data`` is an ``(n, 3072)`` uint8 array (1024 red, then green, then blue
values per image, row-major 32x32), ``labels`` (CIFAR-10) or ``fine_labels``
and ``coarse_labels`` (CIFAR-100) are lists of ints. The meta file holds the
class-name lists. Files are unpickled with :func:`~tinytorch.data.storage.unpickle.safe_load`.
"""

from __future__ import annotations

import errno
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.storage.integrity import CorruptDatasetError
from tinytorch.data.storage.regular_files import read_regular
from tinytorch.data.storage.unpickle import ForbiddenPickleError, safe_load

if TYPE_CHECKING:
    from tinytorch.data.storage.array_cache import MappedFile

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "CifarSpec",
    "CifarSplit",
    "CorruptDatasetError",
    "read_split",
    "split_files",
]


@dataclass(frozen=True)
class CifarSpec:
    """Where a CIFAR variant comes from and how its files are laid out."""

    name: str
    url: str
    md5: str
    archive: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_keys: tuple[str, ...]
    """Label lists in a batch file; the first one is the dataset's ``targets``."""
    names_keys: tuple[str, ...]
    """Class-name lists in the meta file, aligned with ``label_keys``."""
    num_classes: tuple[int, ...]

    @property
    def env_prefix(self) -> str:
        """Prefix of the environment variables that choose a mirror, e.g. ``TINYTORCH_CIFAR10``."""
        return f"TINYTORCH_{self.name.replace('-', '').upper()}"

    @property
    def all_files(self) -> tuple[str, ...]:
        """Every file of the extracted folder: train batches, test batches, meta."""
        return (*self.train_files, *self.test_files, self.meta_file)


CIFAR10 = CifarSpec(
    name="CIFAR10",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    archive="cifar-10-python.tar.gz",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_keys=("labels",),
    names_keys=("label_names",),
    num_classes=(10,),
)

CIFAR100 = CifarSpec(
    name="CIFAR100",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
    archive="cifar-100-python.tar.gz",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_keys=("fine_labels", "coarse_labels"),
    names_keys=("fine_label_names", "coarse_label_names"),
    num_classes=(100, 20),
)


@dataclass(frozen=True)
class CifarSplit:
    """One split in memory.

    Attributes:
        images: ``(N, 3, 32, 32)`` uint8, C-contiguous.
        labels: per label key, ``(N,)`` int64.
        names: per names key, the class names.
        files: the cache files the arrays are memory-mapped from (empty when in memory).
    """

    images: NDArray[np.uint8]
    labels: dict[str, NDArray[np.int64]]
    names: dict[str, list[str]]
    files: tuple[MappedFile, ...] = ()


def split_files(spec: CifarSpec, folder: Path, train: bool) -> list[Path]:
    """The batch files of a split followed by the meta file, in reading order."""
    names = spec.train_files if train else spec.test_files
    return [folder / n for n in (*names, spec.meta_file)]


def read_split(
    spec: CifarSpec, folder: Path, train: bool, contents: Mapping[str, bytes] | None = None
) -> CifarSplit:
    """Read and validate a split from an extracted ``folder``.

    The official archives hold 50,000 training and 10,000 test images; their
    MD5 pins that. Here every file is checked for structure: ``data`` shape and
    dtype, one label per image, labels within the class count, and (CIFAR-10)
    the per-batch count stated by the meta file.

    Args:
        spec: which CIFAR.
        folder: the extracted folder (file names in errors).
        train: the training or the test split.
        contents: the files' bytes by name, when the caller has read (and verified) them
            already; otherwise they are read from ``folder``.

    Raises:
        FileNotFoundError: a batch or meta file is missing.
        CorruptDatasetError: a file is truncated, malformed, has the wrong shape,
            count or label range (``path`` names it).
        ForbiddenPickleError: a file references a global other than numpy's.
    """
    *batch_paths, meta_path = split_files(spec, folder, train)

    def load(path: Path) -> dict[str, Any]:
        if contents is not None and path.name in contents:
            return _load_dict(contents[path.name], path)
        return _load_dict(read_file(path), path)

    meta = load(meta_path)
    per_batch = meta.get("num_cases_per_batch")  # CIFAR-10's meta states it; CIFAR-100's does not
    images: list[NDArray[np.uint8]] = []
    labels: dict[str, list[NDArray[np.int64]]] = {k: [] for k in spec.label_keys}
    for path in batch_paths:
        batch = load(path)
        data = _field(batch, "data", path)
        if (
            not isinstance(data, np.ndarray)
            or data.dtype != np.uint8
            or data.ndim != 2
            or data.shape[1] != 3072
        ):
            shape = getattr(data, "shape", None)
            dtype = getattr(data, "dtype", type(data).__name__)
            raise CorruptDatasetError(
                f"{path}: 'data' should be an (n, 3072) uint8 array, got {dtype} of shape {shape}",
                path=path,
            )
        if isinstance(per_batch, int) and len(data) != per_batch:
            raise CorruptDatasetError(
                f"{path} holds {len(data)} images, but {meta_path.name} says each batch holds {per_batch}",
                path=path,
            )
        images.append(data.reshape(-1, 3, 32, 32))
        for key, num_classes in zip(spec.label_keys, spec.num_classes, strict=True):
            labels[key].append(_labels(_field(batch, key, path), len(data), num_classes, key, path))
    names = {}
    for key, num_classes in zip(spec.names_keys, spec.num_classes, strict=True):
        raw = _field(meta, key, meta_path)
        if not isinstance(raw, list) or len(raw) != num_classes:
            raise CorruptDatasetError(
                f"{meta_path}: {key!r} should list {num_classes} class names", path=meta_path
            )
        names[key] = [_class_name(n, key, meta_path) for n in raw]
    return CifarSplit(
        images=np.ascontiguousarray(np.concatenate(images)),
        labels={k: np.concatenate(v) for k, v in labels.items()},
        names=names,
    )


def read_file(path: Path) -> bytes:
    """The bytes of one extracted CIFAR file (a regular file only: see
    :mod:`~tinytorch.data.storage.regular_files`).

    Raises:
        FileNotFoundError: it is missing.
        CorruptDatasetError: it cannot be read (a directory, FIFO or device in its place, no
            permission...); names it, the ``OSError`` as the cause.
    """
    try:
        return read_regular(path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{path} is missing", str(path)) from None
    except OSError as e:
        raise CorruptDatasetError(
            f"{path} cannot be read ({e.strerror or e}); it should be the CIFAR file of that name: "
            "move what is there away and extract the archive again (or pass download=True)",
            path=path,
        ) from e


def _load_dict(data: bytes, path: Path) -> dict[str, Any]:
    try:
        obj = safe_load(data, str(path))
    except ForbiddenPickleError:
        raise
    except pickle.UnpicklingError as e:  # safe_load's one error for a damaged pickle
        cause = e.__cause__ or e
        raise CorruptDatasetError(
            f"{path} is truncated or not a valid pickle ({type(cause).__name__}: {cause})", path=path
        ) from cause
    if not isinstance(obj, dict):
        raise CorruptDatasetError(f"{path} should hold a dict, got {type(obj).__name__}", path=path)
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    try:
        return batch[key]
    except KeyError:
        raise CorruptDatasetError(f"{path} has no {key!r} entry (keys: {sorted(batch)})", path=path) from None


def _class_name(raw: Any, key: str, path: Path) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bytes):
        try:
            return raw.decode()
        except UnicodeDecodeError as e:
            raise CorruptDatasetError(
                f"{path}: {key!r} holds a name that is not UTF-8 ({e})", path=path
            ) from e
    raise CorruptDatasetError(
        f"{path}: {key!r} should list class names (bytes or str), got a {type(raw).__name__}", path=path
    )


def _labels(raw: Any, n: int, num_classes: int, key: str, path: Path) -> NDArray[np.int64]:
    try:
        found = np.asarray(raw)
    except (TypeError, ValueError, OverflowError) as e:  # ragged nesting, ints beyond any dtype
        raise CorruptDatasetError(f"{path}: {key!r} should be a list of ints ({e})", path=path) from e
    if found.dtype.kind not in "iu":  # floats, bools, objects: not class indices
        raise CorruptDatasetError(
            f"{path}: {key!r} should be a list of ints, got {found.dtype} values", path=path
        )
    if found.shape != (n,):
        raise CorruptDatasetError(
            f"{path}: {key!r} has shape {found.shape}, expected ({n},) to match 'data'", path=path
        )
    problem = label_range_problem(found, num_classes)  # before the cast: uint64 could wrap
    if problem:
        raise CorruptDatasetError(f"{path}: {key!r} {problem}", path=path)
    return found.astype(np.int64)


def label_range_problem(labels: NDArray[np.integer[Any]], num_classes: int) -> str | None:
    """Why ``labels`` are not all class indices in ``[0, num_classes)``, or ``None`` (vectorized)."""
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        return f"values lie in [{labels.min()}, {labels.max()}], expected [0, {num_classes - 1}]"
    return None
