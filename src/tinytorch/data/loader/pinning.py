"""``pin_memory``: hand batches to CUDA users as pinned torch tensors, when that exists."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from tinytorch.data.workers.transport import flatten, unflatten

__all__ = ["pin_memory_function", "to_tensors"]


def pin_memory_function() -> Callable[[Any], Any] | None:
    """A function pinning a batch's arrays, or ``None`` when torch or CUDA is absent.

    Pinned (page-locked) host memory lets ``tensor.to("cuda", non_blocking=True)`` overlap the
    copy with compute. numpy arrays cannot be pinned, so pinning converts to torch tensors
    (:func:`to_tensors`: what torch cannot hold stays numpy); without a CUDA device there is
    nothing to gain and the batch stays numpy.
    """
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None

    def pin(batch: Any) -> Any:
        return to_tensors(batch, lambda t: t.pin_memory())

    return pin


def to_tensors(batch: Any, finish: Callable[[Any], Any] = lambda t: t) -> Any:
    """``batch`` with every array torch can hold as a tensor, and every CPU tensor, passed
    through ``finish`` as a tensor (``pin_memory`` for pinning; the identity by default).

    torch holds numpy's bool, integer, floating and complex dtypes of native byte order
    (``float128``/``complex256`` excepted); an array of another byte order is converted to
    the native one (same values), one with negative strides is copied first (``from_numpy``
    refuses them). Arrays torch cannot hold (str, bytes, datetime64/timedelta64, structured,
    long double) stay numpy arrays, unchanged; other values (strings, numbers) stay as they are.
    The tensors share memory with the arrays where no copy is needed (``torch.from_numpy``).
    Requires torch.
    """
    import torch

    leaves: list[Any] = []
    structure = flatten(batch, leaves, tensors="keep")
    converted = [_tensor_or_array(torch, leaf, finish) for leaf in leaves]
    return unflatten(structure, converted)


def _tensor_or_array(torch: Any, leaf: Any, finish: Callable[[Any], Any]) -> Any:
    if isinstance(leaf, torch.Tensor):
        return finish(leaf)
    array: np.ndarray[Any, Any] = leaf
    if array.dtype.kind not in "biufc":
        return array
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    elif any(s < 0 for s in array.strides) or not array.flags.writeable:
        array = np.ascontiguousarray(array) if array.flags.writeable else array.copy()
    try:
        tensor = torch.from_numpy(array)
    except TypeError:  # a dtype torch lacks (long double)
        return leaf
    return finish(tensor)
