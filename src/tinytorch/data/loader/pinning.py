"""``pin_memory``: hand batches to CUDA users as pinned torch tensors, when that exists."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from tinytorch.data.workers.transport import flatten, unflatten

__all__ = ["pin_memory_function"]


def pin_memory_function() -> Callable[[Any], Any] | None:
    """A function pinning a batch's arrays, or ``None`` when torch or CUDA is absent.

    Pinned (page-locked) host memory lets ``tensor.to("cuda", non_blocking=True)`` overlap the
    copy with compute. numpy arrays cannot be pinned, so pinning converts to torch tensors;
    without a CUDA device there is nothing to gain and the batch stays numpy.
    """
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None

    def pin(batch: Any) -> Any:
        arrays: list[np.ndarray[Any, Any]] = []
        structure = flatten(batch, arrays)
        pinned: list[Any] = [torch.from_numpy(a).pin_memory() for a in arrays]
        return unflatten(structure, pinned)

    return pin
