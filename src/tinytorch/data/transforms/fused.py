"""Crop + flip + normalize of uint8 image batches in one pass over whole planes.

``Compose([RandomCrop(S, padding=p), RandomHorizontalFlip(), (ToFloat(),) Normalize(m, s)])``
on ``(N, C, H, W)`` uint8 with ``S == (H, W)`` and constant padding (the standard CIFAR
augmentation) spends most of its time copying rows of ``W`` bytes one by one: padding the batch,
gathering windows, mirroring. This stage works on flattened planes instead:

1. each plane (``H * W`` bytes; mirrored ones reversed left-right first) is copied into a
   reused buffer with ``p * W + p`` fill bytes on both sides;
2. a crop at ``(top, left)`` is then the contiguous run of ``H * W`` bytes starting ``(top - p)
   * W + (left - p)`` bytes from the plane's start: one gather of whole planes, in which rows
   above and below the image read fill bytes;
3. only columns where ``left - p`` made a row run into its neighbour are wrong; normalizing
   multiplies by a per-sample coefficient plane that is the channel's scale where the crop is
   valid and 0 where it wrapped, and adds one that is the channel's shift, or the normalized
   fill there.

The output is byte-identical to running the crop+flip and then the normalization (``x * 0 +
v == v`` in float32), from the same random draws. Other inputs take that two-step path, about
twice as slow (docs/benchmarks.md, "Augmented CIFAR epoch").

With numba installed (the ``fast`` extra) the same planes are made by one compiled kernel
(:mod:`tinytorch.data.transforms.kernels`) that holds no GIL for the whole batch, about four
times faster on one core (docs/benchmarks.md, "Where the second core goes"), the same bytes (a
property test compares the two paths), and thread workers run it in parallel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from tinytorch.data.memory import batch_empty
from tinytorch.data.transforms.base import Transform
from tinytorch.data.transforms.image import CropThenFlip, mirror_columns
from tinytorch.data.transforms.kernels import crop_flip_normalize_kernel
from tinytorch.data.transforms.normalize import Normalize

__all__ = ["CropFlipNormalize"]

_CHUNK_BYTES = 768 << 10
"""float32 output normalized per step (64 CIFAR images)."""


class CropFlipNormalize(Transform):
    """``CropThenFlip`` followed by ``Normalize`` (or ``ToFloat`` + ``Normalize``), fused.

    Built by ``Compose`` from adjacent steps; draws what ``CropThenFlip`` draws. Output
    float32 ``(N, C, H, W)``.

    Attributes:
        backend: ``"numba"`` (the compiled kernel, when numba is installed: building the step
            loads it, ~0.3 s once per process, so forked workers inherit it) or ``"numpy"``.
            Both give the same bytes; assign ``"numpy"`` to use the numpy path.
    """

    random = True

    def __init__(self, crop_flip: CropThenFlip, normalize: Normalize) -> None:
        self.crop_flip, self.normalize = crop_flip, normalize
        self.backend = "numba" if crop_flip_normalize_kernel() is not None else "numpy"
        self._tables: dict[tuple[int, int, int], tuple[NDArray[np.float32], NDArray[np.float32]]] = {}
        # Scratch buffer sets not in use. list.pop() and list.append() are atomic, so worker
        # threads share the pool without a lock (one a forked worker could inherit held).
        self._spare: list[dict[str, NDArray[Any]]] = []

    def draw(self, rng: np.random.Generator, n: int) -> Any:
        return self.crop_flip.draw(rng, n)

    def apply(self, batch: NDArray[Any], params: Any) -> NDArray[Any]:
        crop = self.crop_flip.crop
        fast = (
            batch.ndim == 4
            and batch.dtype == np.uint8
            and crop.pad_mode == "constant"
            and crop.size == batch.shape[2:]
            and 0 <= crop.fill <= 255
            and float(crop.fill).is_integer()
        )
        if not fast:
            return self.normalize.apply(self.crop_flip.apply(batch, params), None)
        kernel = crop_flip_normalize_kernel() if self.backend == "numba" else None
        if kernel is not None:
            return self._compiled(kernel, np.ascontiguousarray(batch), params)
        try:
            scratch = self._spare.pop()
        except IndexError:
            scratch = {}
        try:
            return self._planes(np.ascontiguousarray(batch), params, scratch)
        finally:
            self._spare.append(scratch)

    def _compiled(self, kernel: Any, batch: NDArray[np.uint8], params: Any) -> NDArray[np.float32]:
        crop_params, flips = params
        n, c, height, width = batch.shape
        crop = self.crop_flip.crop
        at = crop.offsets(crop_params, *crop.positions(height, width))
        scale, shift = self.normalize.coefficients(c, np.dtype(np.uint8))
        out = batch_empty((n, c, height, width), np.float32)
        kernel(
            batch,
            np.ascontiguousarray(at.top, dtype=np.int64),
            np.ascontiguousarray(at.left, dtype=np.int64),
            np.ascontiguousarray(flips, dtype=np.bool_),
            scale.reshape(-1),
            shift.reshape(-1),
            np.float32(crop.fill),
            crop.padding,
            out,
            np.empty(height * width, np.uint8),
        )
        return out

    def _planes(
        self, batch: NDArray[np.uint8], params: Any, scratch: dict[str, NDArray[Any]]
    ) -> NDArray[np.float32]:
        crop_params, flips = params
        n, c, height, width = batch.shape
        crop = self.crop_flip.crop
        p = crop.padding
        rows, cols = crop.positions(height, width)
        at = crop.offsets(crop_params, rows, cols)
        plane, margin = height * width, p * width + p
        padded = _buffer(scratch, "padded", (n, c, plane + 2 * margin), int(crop.fill))
        padded[:, :, margin : margin + plane] = batch.reshape(n, c, plane)
        mirror = np.flatnonzero(flips)
        if len(mirror):
            padded[mirror, :, margin : margin + plane] = mirror_columns(batch[mirror]).reshape(-1, c, plane)
        # A crop at `left` of the mirrored image is the mirror of the crop at cols - 1 - left.
        left = np.where(flips, cols - 1 - at.left, at.left)
        s0, s1, s2 = padded.strides
        runs = as_strided(padded, (n, c, 2 * margin + 1, plane), (s0, s1, s2, s2), writeable=False)
        out = batch_empty((n, c, height, width), np.float32)
        scale, shift = self._coefficient_planes(c, height, width)
        # The run for (top, left) starts (top - p) * W + (left - p) bytes into the plane, which
        # itself starts `margin` bytes into its padded row: at top * W + left.
        start = at.top * width + left
        # Cast and normalize a few samples at a time, so the coefficient planes and the output
        # stay in cache between the passes (faster in every worker setup: docs/benchmarks.md).
        chunk = max(1, _CHUNK_BYTES // (c * plane * 4))
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            part = out[a:b]
            part.reshape(b - a, c, plane)[...] = runs[np.arange(a, b), :, start[a:b]]
            # mode="clip" (the indices are in range anyway): with mode="raise" numpy gathers
            # into a temporary and copies it to `out`.
            scales = np.take(scale, left[a:b], axis=0, out=_buffer(scratch, "scale", part.shape), mode="clip")
            shifts = np.take(shift, left[a:b], axis=0, out=_buffer(scratch, "shift", part.shape), mode="clip")
            np.multiply(part, scales, out=part)
            np.add(part, shifts, out=part)
        return out

    def _coefficient_planes(
        self, channels: int, height: int, width: int
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(2p + 1, C, H, W)`` scale and shift planes for each horizontal offset ``left``."""
        key = (channels, height, width)
        cached = self._tables.get(key)
        if cached is not None:
            return cached
        crop = self.crop_flip.crop
        p = crop.padding
        scale, shift = self.normalize.coefficients(channels, np.dtype(np.uint8))
        fill = np.float32(crop.fill) * scale + shift  # what a fill byte normalizes to
        source_col = np.arange(width)[None, :] + np.arange(-p, p + 1)[:, None]  # (2p + 1, W)
        wrapped = ((source_col < 0) | (source_col >= width))[:, None, None, :]
        shape = (2 * p + 1, channels, height, width)
        scales = np.where(wrapped, np.float32(0), np.broadcast_to(scale, shape)).astype(np.float32)
        shifts = np.where(wrapped, np.broadcast_to(fill, shape), np.broadcast_to(shift, shape))
        result = (scales, shifts.astype(np.float32))
        self._tables[key] = result
        return result

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_spare"] = []
        return state

    def __repr__(self) -> str:
        return f"CropFlipNormalize({self.crop_flip.crop!r}, {self.crop_flip.flip!r}, {self.normalize!r})"


def _buffer(
    scratch: dict[str, NDArray[Any]], name: str, shape: tuple[int, ...], fill: int | None = None
) -> NDArray[Any]:
    """Scratch buffer ``name`` of ``shape`` (float32, or uint8 filled with ``fill``), reused
    from batch to batch: allocating and freeing megabytes per batch makes the C allocator hand
    pages back and fault them in again. A smaller batch uses the first rows of a larger buffer.
    Buffer sets are shared through a pool, so short-lived worker threads reuse them too."""
    buffer = scratch.get(name)
    if buffer is None or buffer.shape[1:] != shape[1:] or len(buffer) < shape[0]:
        dtype = np.float32 if fill is None else np.uint8
        buffer = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
        scratch[name] = buffer
    return buffer[: shape[0]]
