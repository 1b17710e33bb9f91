"""``default_collate``: a list of samples to one numpy batch (or one torch batch for tensors).

Rules (field by field, recursively; torch's rules where they exist):

============================  ====================================================
sample field                   batch field
============================  ====================================================
numpy array (any shape)        array of shape ``(N, *shape)``
object with ``__array__``      converted with ``numpy.asarray``, then as above
numpy number / Python number   1-D array (dtype: see *Numbers* below)
other numpy scalar             1-D array of its dtype (``datetime64``, records...)
``torch.Tensor``               ``torch.stack``: a tensor of shape ``(N, *shape)``
``str`` / ``bytes``            list of the values (``numpy.str_`` too)
dict / Mapping                 the same mapping type of collated fields (same keys)
namedtuple                     the same namedtuple of collated fields
tuple / list                   list of collated fields (PyTorch's rule)
other Sequence (``range``)     the same type if it can be built from a list, else
                               a list (PyTorch's rule)
============================  ====================================================

**Numbers.** Python ``bool``/``int``/``float``/``complex`` stand for ``bool``/``int64``/
``float64``/``complex128``; numpy scalars for their own dtype. A field mixing them is promoted
with numpy's rules (``numpy.result_type``, as ``numpy.array`` does): ``[1, np.int64(2)]`` is
int64, ``[1.0, np.float32(2)]`` float64, ``[True, 1]`` int64 (numpy and torch both promote a
bool with an int). The one promotion refused is integers that no integer dtype holds
(``uint64`` with a signed int): numpy would give float64, losing precision above 2**53.

**Arrays.** Arrays must have the same shape. Their dtypes may differ in width within one
category, and are then promoted as ``numpy.stack`` does: ``int32`` + ``int64`` gives int64,
``float32`` + ``float64`` float64, ``<U2`` + ``<U3`` ``<U3``, ``datetime64[D]`` +
``datetime64[s]`` ``datetime64[s]`` (widening loses nothing). Different categories (bool,
integer, floating, complex, str, bytes, datetime, timedelta; a structured dtype is its own)
are refused: a ``uint8`` image next to a ``float32`` one is almost always a sample that missed
a transform, and promoting it would hide that. Object arrays are refused (as torch does):
their elements are arbitrary Python objects, not a batchable array.

**Tensors.** The same rules with torch's dtypes (``torch.promote_types`` within a category).
A tensor that requires grad keeps its graph (``torch.stack``), as torch's ``default_collate``
does without workers; process workers refuse it (the graph cannot leave the process; torch's
workers raise too). A field mixing tensors and numpy arrays is refused: say which one you want.
When any field of the samples is a tensor, the batch is what torch's ``default_collate`` makes
of them: the other fields' numbers and numpy arrays become tensors too (``torch.from_numpy``, no
copy), so a torch training loop gets ``(images, labels)`` as two tensors; strings stay lists.

Anything else raises :class:`CollateError` naming the field, what differs, and at which sample
positions. A :class:`~tinytorch.data.datasets.stacked.StackedSamples` (what array-backed
datasets' ``__getitems__`` return) is already a batch: it is returned as is.

The common case (every sample's field of one type: all ``int``, all ``ndarray`` of one dtype,
all tuples) is decided per *type*, never with a Python call per sample.
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any

import numpy as np

from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.memory import batch_empty

__all__ = ["CollateError", "default_collate", "default_convert"]


class CollateError(TypeError, ValueError, RuntimeError):
    """Samples could not be combined into a batch.

    A ``TypeError`` (mixed kinds), a ``ValueError`` (mismatched shapes) and a
    ``RuntimeError`` (what torch raises for unequal sizes), so callers catching any of
    PyTorch's exceptions still catch it.
    """


class _EmptyBatchError(CollateError, IndexError):
    """An empty batch (torch's ``default_collate`` raises ``IndexError`` there)."""


def default_collate(batch: Sequence[Any]) -> Any:
    """Combine a sequence of samples into one batch (see the module docstring for the rules).

    Args:
        batch: the samples, or a ``StackedSamples`` read at once by a dataset.

    Raises:
        CollateError: the samples disagree in kind, shape, dtype category, keys or length,
            or a field cannot be batched (``None``, an object array...). Also an
            ``IndexError`` for an empty batch.
    """
    if isinstance(batch, StackedSamples):
        return batch.collated()
    if len(batch) == 0:
        raise _EmptyBatchError("default_collate got an empty batch; batches need at least one sample")
    collated = _collate(list(batch), ())
    torch = sys.modules.get("torch")
    if torch is not None and not isinstance(collated, np.ndarray) and _holds_tensor(collated, torch):
        return _tensors_throughout(collated, torch)
    return collated


def _holds_tensor(batch: Any, torch: Any) -> bool:
    if isinstance(batch, torch.Tensor):
        return True
    if isinstance(batch, Mapping):
        return any(_holds_tensor(v, torch) for v in batch.values())
    if _is_container_sequence(batch):
        return any(_holds_tensor(v, torch) for v in batch)
    return False


def _is_container_sequence(x: Any) -> bool:
    """A sequence the collate rules go into (a list, tuple, deque...), not a str or bytes."""
    return isinstance(x, Sequence) and not isinstance(x, (str, bytes))


def _tensors_throughout(batch: Any, torch: Any) -> Any:
    """``batch`` with its numeric numpy arrays as tensors viewing them (torch's default_collate
    turns numbers and arrays into tensors when it makes a batch)."""
    if isinstance(batch, np.ndarray):
        if batch.dtype.kind not in "biufc" or batch.dtype.hasobject:
            return batch
        native = batch if batch.dtype.isnative else batch.astype(batch.dtype.newbyteorder("="))
        try:
            return torch.from_numpy(native)
        except (TypeError, RuntimeError):  # a dtype torch lacks stays numpy
            return batch
    # The containers keep the types collation gave them (defaultdict, a list subclass, deque...)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_tensors_throughout(v, torch) for v in batch))
    if isinstance(batch, Mapping):
        return _same_mapping(batch, {k: _tensors_throughout(v, torch) for k, v in batch.items()})
    if _is_container_sequence(batch):
        return _same_sequence(batch, [_tensors_throughout(v, torch) for v in batch])
    return batch


def default_convert(sample: Any) -> Any:
    """The ``collate_fn`` used when batching is off (``batch_size=None``): ``sample`` with
    torch's container rules.

    A plain tuple becomes a list (torch's ``default_convert`` does so "for backwards
    compatibility", as ``default_collate`` does for batches: a script that assigns
    ``batch[0] = ...`` works with either); named tuples, mappings and other sequences keep
    their type where it can be rebuilt (torch's rule, :func:`_same_mapping`,
    :func:`_same_sequence`); this applies through nested containers. The leaves are returned as
    they are: numpy is this library's batch format, so arrays are not turned into tensors.
    """
    if isinstance(sample, StackedSamples):  # samples read at once: already columns, kept whole
        return sample
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):  # a namedtuple
        return type(sample)(*(default_convert(x) for x in sample))
    if isinstance(sample, Mapping):
        return _same_mapping(sample, {key: default_convert(value) for key, value in sample.items()})
    if _is_container_sequence(sample):
        return _same_sequence(sample, [default_convert(x) for x in sample])
    return sample


def _same_mapping(like: Mapping[Any, Any], values: dict[Any, Any]) -> Any:
    """``values`` in the mapping type of ``like``, torch's rule: a copy of a mutable mapping
    updated (it may carry attributes), else ``type(like)(values)``, else a plain dict."""
    if type(like) is dict:
        return values
    try:
        if isinstance(like, MutableMapping):
            clone = copy.copy(like)
            clone.update(values)
            return clone
        return type(like)(values)  # type: ignore[call-arg]
    except TypeError:
        return values


def _same_sequence(like: Sequence[Any], items: list[Any]) -> Any:
    """``items`` in the sequence type of ``like``, torch's rule: a list for a list or a plain
    tuple, a copy of another mutable sequence with its items replaced, else
    ``type(like)(items)``, else a list."""
    if type(like) is list or isinstance(like, tuple):
        return items
    try:
        if isinstance(like, MutableSequence):
            clone = copy.copy(like)
            for i, item in enumerate(items):
                clone[i] = item
            return clone
        return type(like)(items)  # type: ignore[call-arg]
    except TypeError:
        return items


Path = tuple[Any, ...]


_PYTHON_NUMBERS: dict[type, np.dtype[Any]] = {
    bool: np.dtype(np.bool_),
    int: np.dtype(np.int64),
    float: np.dtype(np.float64),
    complex: np.dtype(np.complex128),
}


def _collate(samples: list[Any], path: Path) -> Any:
    types = set(map(type, samples))
    if len(types) == 1:  # the common case, decided without a per-sample Python call
        (only,) = types
        dtype = _PYTHON_NUMBERS.get(only)
        if dtype is not None:
            return _numbers_as(samples, dtype, path)
        if only is np.ndarray:
            return _collate_arrays(samples, path)
        if only is tuple or only is list:  # (image, label) samples: no per-sample kind check
            return _collate_sequences(samples, path)
    kinds = {t: _kind_of(t) for t in types}
    if len(set(kinds.values())) > 1:
        _refuse_mixed_kinds(samples, path, kinds)
    kind = kinds[type(samples[0])]
    if kind == "number":
        return _collate_numbers(samples, path, types)
    return _COLLATORS[kind](samples, path)


def _kind_of(t: type) -> str:
    """The kind of a sample field of type ``t`` (decided per type, not per sample)."""
    if issubclass(t, np.ndarray):
        return "array"
    if issubclass(t, np.generic):
        if issubclass(t, np.str_):
            return "str"
        if issubclass(t, np.bytes_):
            return "bytes"
        return "number" if np.dtype(t).kind in "biufc" else "numpy scalar"
    if issubclass(t, (bool, int, float, complex)):
        return "number"
    if issubclass(t, (str, bytes)):
        return "str" if issubclass(t, str) else "bytes"
    torch = sys.modules.get("torch")
    if torch is not None and issubclass(t, torch.Tensor):
        return "tensor"
    if issubclass(t, Mapping):
        return "mapping"
    if issubclass(t, tuple) and hasattr(t, "_fields"):
        return f"namedtuple {t.__name__}"
    if issubclass(t, Sequence):
        return "sequence"
    if hasattr(t, "__array__"):
        return "array-like"
    return f"unsupported {t.__name__}"


def _refuse_mixed_kinds(samples: list[Any], path: Path, kinds: dict[type, str]) -> None:
    def label(x: Any) -> str:
        kind = kinds[type(x)]
        return type(x).__name__ if kind in ("number", "array", "tensor") else kind

    fix = "make the samples agree"
    if {"tensor", "array"} <= set(kinds.values()):
        fix = (
            "return one kind from the dataset: torch tensors (torch.as_tensor(x)) or numpy "
            "arrays (tensor.numpy())"
        )
    _check_same(samples, path, label, "kinds", fix=fix)


def _collate_numbers(samples: list[Any], path: Path, types: set[type]) -> np.ndarray[Any, Any]:
    """Python and numpy numbers, promoted with numpy's rules (one ``result_type`` per call)."""
    dtypes = {_number_dtype(t) for t in types}
    if len(dtypes) == 1:
        return _numbers_as(samples, dtypes.pop(), path)
    result = np.result_type(*dtypes)
    if result.kind == "f" and not any(d.kind in "fc" for d in dtypes):
        names = ", ".join(sorted(str(d) for d in dtypes))
        raise CollateError(
            f"default_collate: cannot batch {_field(path)}: its integers have dtypes {names}, "
            f"which no integer dtype holds (numpy would give {result}, losing precision). "
            "Fix: cast the field to one dtype in the dataset"
        )
    return _numbers_as(samples, result, path)


def _number_dtype(t: type) -> np.dtype[Any]:
    if issubclass(t, np.generic):
        return np.dtype(t)
    for python_type, dtype in _PYTHON_NUMBERS.items():  # bool before int: bool is an int
        if issubclass(t, python_type):
            return dtype
    raise AssertionError(f"not a number type: {t}")


def _numbers_as(samples: list[Any], dtype: np.dtype[Any], path: Path) -> np.ndarray[Any, Any]:
    try:
        return np.array(samples, dtype=dtype)
    except OverflowError as e:
        raise CollateError(
            f"default_collate: {_field(path)} holds ints that do not fit in {dtype} ({e}); "
            "store them as numpy arrays of a wider dtype (e.g. object) or as strings"
        ) from e


_CATEGORIES = {"b": "bool", "i": "integer", "u": "integer", "f": "floating", "c": "complex"}
_CATEGORIES.update({"U": "str", "S": "bytes", "M": "datetime", "m": "timedelta"})


def _category(dtype: np.dtype[Any]) -> Any:
    """Dtypes of one category may be promoted to each other; a structured dtype is its own."""
    return _CATEGORIES.get(dtype.kind, dtype)


def _collate_arrays(samples: list[Any], path: Path) -> np.ndarray[Any, Any]:
    arrays = [np.asarray(s) for s in samples]
    first = arrays[0]
    if len({a.shape for a in arrays}) != 1:
        _check_same(
            arrays,
            path,
            lambda a: a.shape,
            "shapes",
            fix="make every sample the same shape (crop, pad or resize it in the dataset "
            "or a transform), or pass a collate_fn that handles ragged data",
        )
    dtypes = {a.dtype for a in arrays}
    dtype = first.dtype if len(dtypes) == 1 else _promote_arrays(arrays, dtypes, path)
    if dtype.hasobject:
        raise CollateError(
            f"default_collate: cannot batch {_field(path)}: it is a numpy array of dtype {dtype}, "
            "which holds Python objects, not numbers (torch's default_collate refuses it too). "
            "Fix: convert it in the dataset to a numeric or string array, or pass a collate_fn"
        )
    out = batch_empty((len(arrays), *first.shape), dtype)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def _promote_arrays(
    arrays: list[np.ndarray[Any, Any]], dtypes: set[np.dtype[Any]], path: Path
) -> np.dtype[Any]:
    fix = (
        "cast the field to one dtype in the dataset (arrays of different kinds, e.g. uint8 and "
        "float32, usually mean a sample missed a transform)"
    )
    if len({_category(d) for d in dtypes}) > 1:
        _check_same(arrays, path, lambda a: a.dtype, "dtypes", fix=fix)
    try:
        result = np.result_type(*dtypes)
    except TypeError:  # structured dtypes that numpy cannot promote
        result = None
    if result is None or _category(result) != _category(next(iter(dtypes))):
        _check_same(arrays, path, lambda a: a.dtype, "dtypes", fix=fix)
    assert result is not None
    return result


def _collate_tensors(samples: list[Any], path: Path) -> Any:
    torch = sys.modules["torch"]
    first = samples[0]
    if len({t.shape for t in samples}) != 1:
        _check_same(samples, path, lambda t: tuple(t.shape), "shapes", fix="make every sample the same shape")
    dtypes = {t.dtype for t in samples}
    dtype = first.dtype
    if len(dtypes) > 1:

        def category(d: Any) -> str:
            return (
                "bool"
                if d == torch.bool
                else "complex"
                if d.is_complex
                else "floating"
                if d.is_floating_point
                else "integer"
            )

        _check_same(
            samples,
            path,
            lambda t: category(t.dtype),
            "dtype categories",
            fix="cast the field to one dtype in the dataset",
        )
        dtype = functools.reduce(torch.promote_types, dtypes)
    plain = all(type(t) is torch.Tensor for t in samples)
    if not plain or any(
        t.requires_grad or t.device.type != "cpu" or t.layout != torch.strided for t in samples
    ):
        return torch.stack(samples)  # keeps autograd graphs, subclasses and devices as torch does
    out = _empty_tensor(torch, (len(samples), *first.shape), dtype)
    if out is None:
        return torch.stack(samples)
    return torch.stack(samples, out=out)


def _empty_tensor(torch: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """A CPU tensor from :func:`batch_empty` (shared memory in a process worker), or ``None``."""
    storage = _numpy_storage(dtype)
    if storage is None:
        return None
    np_dtype, raw = storage
    out = torch.from_numpy(batch_empty(shape, np_dtype))
    return out.view(dtype) if raw else out


@functools.cache
def _numpy_storage(dtype: Any) -> tuple[np.dtype[Any], bool] | None:
    """The numpy dtype that holds a torch ``dtype``'s bytes, and whether it is only a stand-in:
    a dtype numpy lacks (bfloat16, float8...) is held as the integers of its width."""
    torch = sys.modules["torch"]
    try:
        return torch.empty(0, dtype=dtype).numpy().dtype, False
    except TypeError:
        width = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}.get(dtype.itemsize)
        return None if width is None else (np.dtype(width), True)


def _collate_list(samples: list[Any], path: Path) -> list[Any]:
    return list(samples)


def _collate_mappings(samples: list[Any], path: Path) -> Any:
    first = samples[0]
    keys = list(first.keys())
    _check_same(
        samples,
        path,
        lambda m: frozenset(m.keys()),
        "keys",
        show=lambda ks: "{" + ", ".join(sorted(map(repr, ks))) + "}",
        fix="give every sample the same keys",
    )
    collated = {k: _collate([s[k] for s in samples], (*path, k)) for k in keys}
    return _same_mapping(first, collated)  # torch's rule: the mapping's type kept


def _collate_namedtuples(samples: list[Any], path: Path) -> Any:
    _check_same(samples, path, len, "lengths", fix="give every sample the same number of fields")
    fields = zip(*samples, strict=True)
    return type(samples[0])(*(_collate(list(f), (*path, i)) for i, f in enumerate(fields)))


def _collate_sequences(samples: list[Any], path: Path) -> Any:
    _check_same(samples, path, len, "lengths", fix="give every sample the same number of fields")
    fields = [_collate(list(f), (*path, i)) for i, f in enumerate(zip(*samples, strict=True))]
    return _same_sequence(samples[0], fields)  # torch's rule: a list, or the sequence's type


def _unsupported(samples: list[Any], path: Path) -> Any:
    raise CollateError(
        f"default_collate: {_field(path)} is a {type(samples[0]).__name__}, which cannot be "
        "batched; samples may hold numpy arrays, torch tensors, numbers, str/bytes, and dicts, "
        "tuples or lists of those. Convert it in the dataset, or pass a collate_fn"
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
        "numpy scalar": _collate_arrays,  # datetime64, timedelta64, records: as 0-d arrays
        "tensor": _collate_tensors,
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
