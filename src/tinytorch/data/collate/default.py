"""``default_collate``: a list of samples to one numpy batch.

Rules (field by field, recursively):

==========================  ==============================================
sample field                 batch field
==========================  ==============================================
numpy array (any shape)      array of shape ``(N, *shape)``, same dtype
object with ``__array__``    converted with ``numpy.asarray``, then as above
numpy scalar                 1-D array, same dtype
Python ``bool``              1-D ``bool`` array
Python ``int``               1-D ``int64`` array
Python ``float``             1-D ``float64`` array
Python ``complex``           1-D ``complex128`` array
``str`` / ``bytes``          list of the values
dict / Mapping               dict of collated fields (same keys required)
namedtuple                   the same namedtuple of collated fields
tuple / list                 list of collated fields (PyTorch's rule)
==========================  ==============================================

Fields must agree across samples: the same kind, and for arrays the same shape
and dtype (no silent promotion). Anything else raises :class:`CollateError`
naming the field, what differs, and at which sample positions.

A :class:`~tinytorch.data.datasets.stacked.StackedSamples` (what array-backed
datasets' ``__getitems__`` return) is already a batch: it is returned as is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.memory import batch_empty

__all__ = ["CollateError", "default_collate", "default_convert"]


class CollateError(TypeError, ValueError):
    """Samples could not be combined into a batch.

    A ``TypeError`` (mixed kinds) and a ``ValueError`` (mismatched shapes), so
    callers catching either of PyTorch's exceptions still catch it.
    """


def default_collate(batch: Sequence[Any]) -> Any:
    """Combine a sequence of samples into one batch (see the module docstring for the rules).

    Args:
        batch: the samples, or a ``StackedSamples`` read at once by a dataset.

    Raises:
        CollateError: the samples disagree in kind, shape, dtype, keys or length.
    """
    if isinstance(batch, StackedSamples):
        return batch.collated()
    if len(batch) == 0:
        raise CollateError("default_collate got an empty batch; batches need at least one sample")
    return _collate(list(batch), ())


def default_convert(sample: Any) -> Any:
    """The ``collate_fn`` used when batching is off (``batch_size=None``): returns ``sample``.

    numpy is this library's batch format, so there is nothing to convert.
    """
    return sample


Path = tuple[Any, ...]


_FAST_SCALARS: dict[type, type[np.generic]] = {
    bool: np.bool_,
    int: np.int64,
    float: np.float64,
    complex: np.complex128,
}


def _collate(samples: list[Any], path: Path) -> Any:
    types = set(map(type, samples))
    if len(types) == 1:  # the common case, checked without a per-sample Python call
        (only,) = types
        scalar = _FAST_SCALARS.get(only)
        if scalar is not None:
            return _typed(scalar)(samples, path)
        if only is np.ndarray:
            return _collate_arrays(samples, path)
        if only is tuple or only is list:  # (image, label) samples: no per-sample kind check
            return _collate_sequences(samples, path)
    kind = _kind_of(samples[0])
    _check_same(samples, path, _kind_of, "kinds")
    return _COLLATORS[kind](samples, path)


def _kind_of(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return "array"
    if isinstance(x, np.generic):
        return "numpy scalar"
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int):
        return "int"
    if isinstance(x, float):
        return "float"
    if isinstance(x, complex):
        return "complex"
    if isinstance(x, (str, bytes)):
        return type(x).__name__
    if isinstance(x, Mapping):
        return "mapping"
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return f"namedtuple {type(x).__name__}"
    if isinstance(x, (tuple, list)):
        return "sequence"
    if hasattr(x, "__array__"):
        return "array-like"
    return f"unsupported {type(x).__name__}"


def _collate_arrays(samples: list[Any], path: Path) -> np.ndarray[Any, Any]:
    arrays = [np.asarray(s) for s in samples]
    first = arrays[0]
    if len({a.shape for a in arrays}) == 1 and len({a.dtype for a in arrays}) == 1:
        out = batch_empty((len(arrays), *first.shape), first.dtype)
        for i, a in enumerate(arrays):
            out[i] = a
        return out
    _check_same(
        arrays,
        path,
        lambda a: a.shape,
        "shapes",
        fix="make every sample the same shape (crop, pad or resize it in the dataset "
        "or a transform), or pass a collate_fn that handles ragged data",
    )
    _check_same(arrays, path, lambda a: a.dtype, "dtypes", fix="cast the field to one dtype in the dataset")
    return np.stack(arrays)


def _collate_numpy_scalars(samples: list[Any], path: Path) -> np.ndarray[Any, Any]:
    _check_same(samples, path, lambda s: s.dtype, "dtypes", fix="cast the field to one dtype in the dataset")
    return np.array(samples, dtype=samples[0].dtype)


def _typed(dtype: type[np.generic]) -> Callable[[list[Any], Path], np.ndarray[Any, Any]]:
    def collate(samples: list[Any], path: Path) -> np.ndarray[Any, Any]:
        try:
            return np.array(samples, dtype=dtype)
        except OverflowError as e:
            raise CollateError(
                f"default_collate: {_field(path)} holds ints that do not fit in int64 ({e}); "
                "store them as numpy arrays of a wider dtype (e.g. object) or as strings"
            ) from e

    return collate


def _collate_list(samples: list[Any], path: Path) -> list[Any]:
    return list(samples)


def _collate_mappings(samples: list[Any], path: Path) -> Any:
    keys = list(samples[0].keys())
    _check_same(
        samples,
        path,
        lambda m: frozenset(m.keys()),
        "keys",
        show=lambda ks: "{" + ", ".join(sorted(map(repr, ks))) + "}",
        fix="give every sample the same keys",
    )
    collated = {k: _collate([s[k] for s in samples], (*path, k)) for k in keys}
    elem_type = type(samples[0])
    if elem_type is dict:
        return collated
    try:
        return elem_type(collated)
    except TypeError:
        return collated


def _collate_namedtuples(samples: list[Any], path: Path) -> Any:
    fields = zip(*samples, strict=True)
    return type(samples[0])(*(_collate(list(f), (*path, i)) for i, f in enumerate(fields)))


def _collate_sequences(samples: list[Any], path: Path) -> list[Any]:
    _check_same(samples, path, len, "lengths", fix="give every sample the same number of fields")
    return [_collate(list(f), (*path, i)) for i, f in enumerate(zip(*samples, strict=True))]


def _unsupported(samples: list[Any], path: Path) -> Any:
    raise CollateError(
        f"default_collate: {_field(path)} is a {type(samples[0]).__name__}, which cannot be "
        "batched; samples may hold numpy arrays, numbers, str/bytes, and dicts, tuples or "
        "lists of those. Convert it in the dataset, or pass a collate_fn"
    )


class _Collators(dict[str, Callable[[list[Any], Path], Any]]):
    def __missing__(self, kind: str) -> Callable[[list[Any], Path], Any]:
        if kind.startswith("namedtuple"):
            return _collate_namedtuples
        return _unsupported


_COLLATORS = _Collators(
    {
        "array": _collate_arrays,
        "array-like": _collate_arrays,
        "numpy scalar": _collate_numpy_scalars,
        "bool": _typed(np.bool_),
        "int": _typed(np.int64),
        "float": _typed(np.float64),
        "complex": _typed(np.complex128),
        "str": _collate_list,
        "bytes": _collate_list,
        "mapping": _collate_mappings,
        "sequence": _collate_sequences,
    }
)


def _check_same(
    items: list[Any],
    path: Path,
    key: Callable[[Any], Any],
    what: str,
    *,
    show: Callable[[Any], str] = str,
    fix: str = "make the samples agree",
) -> None:
    """Raise CollateError when ``key`` differs across ``items``, listing groups by position."""
    first = key(items[0])
    if all(key(x) == first for x in items):
        return
    groups: dict[Any, list[int]] = {}
    for position, x in enumerate(items):
        groups.setdefault(key(x), []).append(position)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    parts = "; ".join(f"{show(k)} at {_positions(p)}" for k, p in ordered)
    raise CollateError(
        f"default_collate: cannot batch {_field(path)}: samples have different {what}: {parts}. Fix: {fix}"
    )


def _field(path: Path) -> str:
    if not path:
        return "the samples"
    return "field " + "".join(f"[{p!r}]" for p in path)


def _positions(positions: list[int], limit: int = 8) -> str:
    """``[0, 1, 2, 5]`` -> ``"samples 0-2, 5"`` (at most ``limit`` runs, then ``...``)."""
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and runs[-1][1] == p - 1:
            runs[-1] = (runs[-1][0], p)
        else:
            runs.append((p, p))
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit])
    if len(runs) > limit:
        text += ", ..."
    word = "sample" if len(positions) == 1 else "samples"
    return f"{word} {text}"
