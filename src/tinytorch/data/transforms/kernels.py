"""Compiled kernels for the batch transforms, when numba is installed (the ``fast`` extra).

``pip install "tinytorch-data[fast]"`` installs numba; without it every transform runs its
numpy path, which returns the same bytes. A kernel here runs a whole batch in one call that
holds no GIL (``nogil=True``), so thread workers run it in parallel, and in one pass over the
output instead of numpy's several (FFCV compiles its augmentations with numba for the same
reasons: ``ffcv/transforms/``).

Kernels are compiled on first request (:func:`crop_flip_normalize_kernel`) and cached on disk
by numba (``cache=True``): the first process ever pays ~1 s, later ones ~0.3 s to import numba
and load it. Nothing happens at import time.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["crop_flip_normalize_kernel", "numba_available"]

_LOCK = threading.Lock()
_KERNELS: dict[str, Callable[..., None] | None] = {}


def numba_available() -> bool:
    """Whether numba can be imported (the ``fast`` extra is installed)."""
    return crop_flip_normalize_kernel() is not None


def crop_flip_normalize_kernel() -> Callable[..., None] | None:
    """The compiled crop + flip + normalize kernel, or ``None`` without numba.

    ``kernel(batch, top, left, flips, scale, shift, fill, padding, out, scratch)`` with
    ``batch`` ``(N, C, H, W)`` uint8 C-contiguous, ``top``/``left`` ``(N,)`` int64 crop offsets
    in the padded image (``0 <= top, left <= 2 * padding``), ``flips`` ``(N,)`` bool, ``scale``
    and ``shift`` ``(C,)`` float32, ``fill`` the padding byte as float32, ``out`` ``(N, C, H,
    W)`` float32 C-contiguous, ``scratch`` ``(H * W,)`` uint8. Writes
    ``out[i, c] = float32(crop_i) * scale[c] + shift[c]`` (multiply, then add, each rounded to
    float32 as numpy does: no fused multiply-add), where ``crop_i`` is the ``H x W`` window at
    ``(top[i], left[i])`` of image ``i`` padded by ``padding`` bytes of ``fill`` on every side,
    mirrored left-right when ``flips[i]``. The same bytes as
    ``CropFlipNormalize``'s numpy path. Runs without the GIL.

    A compilation failure (an incompatible numba) is reported once with ``warnings.warn`` and
    the numpy path is used.
    """
    name = "crop_flip_normalize"
    if name not in _KERNELS:
        with _LOCK:
            if name not in _KERNELS:
                _KERNELS[name] = _compile_crop_flip_normalize()
    return _KERNELS[name]


def _compile_crop_flip_normalize() -> Callable[..., None] | None:
    try:
        import numba
        from numba import types
    except ImportError:
        return None
    try:
        signature = types.void(
            types.uint8[:, :, :, ::1],
            types.int64[::1],
            types.int64[::1],
            types.bool_[::1],
            types.float32[::1],
            types.float32[::1],
            types.float32,
            types.int64,
            types.float32[:, :, :, ::1],
            types.uint8[::1],
        )
        compiled: Callable[..., None] = numba.njit(signature, nogil=True, cache=True, boundscheck=False)(
            _crop_flip_normalize
        )
    except Exception as e:  # an incompatible numba/llvmlite: the numpy path gives the same bytes
        warnings.warn(
            f"numba is installed but compiling the crop/flip/normalize kernel failed ({type(e).__name__}: "
            f"{e}); using the numpy path (same output, slower). Reinstall with "
            '`pip install "tinytorch-data[fast]"` to get a compatible numba',
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return compiled


def _crop_flip_normalize(
    batch: Any,
    top: Any,
    left: Any,
    flips: Any,
    scale: Any,
    shift: Any,
    fill: Any,
    padding: Any,
    out4: Any,
    scratch: Any,
) -> None:  # pragma: no cover - compiled by numba; its output is compared with the numpy path
    """Plain Python that numba compiles (see :func:`crop_flip_normalize_kernel`).

    Works on flattened planes, as the numpy path does: the crop of a plane at ``(top, left)``
    is the contiguous run of ``H * W`` bytes starting ``(top - p) * W + (left - p)`` bytes from
    the plane's start, except where that run leaves the image (rows above or below: fill) or a
    row wraps into its neighbour (the first or last ``|left - p|`` columns: fill). A mirrored
    sample's plane is first mirrored row by row into ``scratch``; its crop at ``left`` is then
    the crop of the mirror at ``2p - left``. Loops run over slices from index 0 so numba
    vectorizes them (signed offset indexing would keep its negative-index checks in the loop).
    """
    n, c, h, w = batch.shape
    hw = h * w
    src = batch.reshape(n * c * hw)
    out = out4.reshape(n * c * hw)
    for i in range(n):
        shift_x = left[i] - padding
        flip = flips[i]
        if flip:
            shift_x = -shift_x
        offset = (top[i] - padding) * w + shift_x
        lo = min(hw, max(0, -offset))
        hi = max(lo, min(hw, hw - offset))
        for ch in range(c):
            s = scale[ch]
            b = shift[ch]
            fill_value = fill * s + b
            start = (i * c + ch) * hw
            if flip:
                for y in range(h):
                    source_row = src[start + y * w : start + y * w + w]
                    mirrored_row = scratch[y * w : y * w + w]
                    for x in range(w):
                        mirrored_row[x] = source_row[np.uint64(w - 1 - x)]
                run_in = scratch[lo + offset : hi + offset]
            else:
                run_in = src[start + lo + offset : start + hi + offset]
            plane = out[start : start + hw]
            for j in range(lo):
                plane[j] = fill_value
            run_out = plane[lo:hi]
            for j in range(run_out.size):
                run_out[j] = np.float32(run_in[j]) * s + b
            for j in range(hi, hw):
                plane[j] = fill_value
            if shift_x > 0:  # the last shift_x columns of each row read the next row
                for y in range(h):
                    row = plane[y * w : y * w + w]
                    for x in range(max(0, w - shift_x), w):
                        row[x] = fill_value
            elif shift_x < 0:  # the first -shift_x columns read the previous row
                for y in range(h):
                    row = plane[y * w : y * w + w]
                    for x in range(min(w, -shift_x)):
                        row[x] = fill_value
