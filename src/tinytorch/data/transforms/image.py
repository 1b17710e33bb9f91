"""Random image augmentations on whole batches: crop, flip, erasing.

Every transform takes ``(C, H, W)`` or ``(N, C, H, W)`` arrays of any dtype, draws all its
random numbers for the batch in one call (:meth:`draw`), and applies them with array
operations only (:meth:`apply`): no per-sample Python loop.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from tinytorch.data.memory import batch_empty
from tinytorch.data.transforms.base import Transform
from tinytorch.data.transforms.checks import (
    check_fill,
    check_interval,
    check_probability,
    check_size,
    fill_of_dtype,
)
from tinytorch.data.validate import check_int

__all__ = [
    "CropThenFlip",
    "Cutout",
    "RandomCrop",
    "RandomErasing",
    "RandomHorizontalFlip",
    "mirror_columns",
]

PadMode = Literal["constant", "edge", "reflect", "symmetric"]


class CropParams(NamedTuple):
    """Top-left corner of each crop in the padded image: ``top``, ``left``, each ``(N,)`` int64."""

    top: NDArray[np.int64]
    left: NDArray[np.int64]


class RandomCrop(Transform):
    """Pad by ``padding`` on every side, then crop ``size`` at a uniformly random position.

    Args:
        size: output ``(h, w)``, or one int for a square.
        padding: pixels added on each side (0 or ``None`` for none).
        pad_mode: ``"constant"`` (with ``fill``), ``"edge"``, ``"reflect"`` or ``"symmetric"``,
            as in ``numpy.pad`` / torchvision; ``padding_mode=`` (torchvision's name, keyword
            only) says the same.
        fill: value of constant padding, cast to the images' dtype (a fraction truncated for
            integer images; a value outside the dtype's range, e.g. 300 for uint8, is a
            ``ValueError`` when the batch arrives, as in torchvision).

    Every one of the ``(H + 2p - h + 1) * (W + 2p - w + 1)`` positions is equally likely.
    Shapes: ``(N, C, H, W)`` in, ``(N, C, h, w)`` out, dtype kept.
    """

    random = True

    def __init__(
        self,
        size: int | tuple[int, int],
        padding: int | None = 0,
        pad_mode: PadMode = "constant",
        fill: float = 0,
        *,
        padding_mode: PadMode | None = None,
    ) -> None:
        self.size = check_size(size, "RandomCrop")
        self.padding = check_int(
            0 if padding is None else padding,
            "RandomCrop padding",
            hint="pixels added on every side, e.g. RandomCrop(32, padding=4)",
        )
        if padding_mode is not None:
            if pad_mode != "constant" and pad_mode != padding_mode:
                raise ValueError(
                    f"RandomCrop got pad_mode={pad_mode!r} and padding_mode={padding_mode!r}: they are "
                    "one setting (padding_mode is torchvision's name); pass one"
                )
            pad_mode = padding_mode
        if pad_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(
                f"RandomCrop pad_mode must be 'constant', 'edge', 'reflect' or 'symmetric', got {pad_mode!r}"
            )
        self.pad_mode = pad_mode
        self.fill = check_fill(fill, "RandomCrop")
        self._positions: tuple[int, int] | None = None

    def positions(self, height: int, width: int) -> tuple[int, int]:
        """Number of possible crop offsets vertically and horizontally for an ``H x W`` input."""
        h, w = self.size
        rows, cols = height + 2 * self.padding - h + 1, width + 2 * self.padding - w + 1
        if rows < 1 or cols < 1:
            raise ValueError(
                f"RandomCrop size {self.size} is larger than the padded input "
                f"({height + 2 * self.padding}, {width + 2 * self.padding}); lower size or raise "
                "padding"
            )
        return rows, cols

    def draw(self, rng: np.random.Generator, n: int) -> Any:
        # The input size is only known in apply(); draw uniform floats and scale them there,
        # so the number of draws does not depend on the image size.
        return rng.random((n, 2))

    def apply(self, batch: NDArray[Any], params: Any) -> NDArray[Any]:
        _, _, height, width = _check_images(batch, "RandomCrop")
        rows, cols = self.positions(height, width)
        crop = self.offsets(params, rows, cols)
        return self.crop(self.pad(batch), crop)

    @staticmethod
    def offsets(uniform: NDArray[np.float64], rows: int, cols: int) -> CropParams:
        """Map uniform draws in ``[0, 1)`` to integer offsets in ``[0, rows)`` x ``[0, cols)``."""
        top = np.minimum((uniform[:, 0] * rows).astype(np.int64), rows - 1)
        left = np.minimum((uniform[:, 1] * cols).astype(np.int64), cols - 1)
        return CropParams(top, left)

    def pad(self, batch: NDArray[Any]) -> NDArray[Any]:
        """The batch padded on the two spatial axes (one allocation and copy)."""
        p = self.padding
        if p == 0:
            return batch
        n, c, height, width = batch.shape
        if self.pad_mode == "constant":
            fill = fill_of_dtype(self.fill, batch.dtype, "RandomCrop")
            padded = np.full((n, c, height + 2 * p, width + 2 * p), fill, dtype=batch.dtype)
            padded[:, :, p : p + height, p : p + width] = batch
            return padded
        return np.pad(batch, ((0, 0), (0, 0), (p, p), (p, p)), mode=self.pad_mode)

    def crop(self, padded: NDArray[Any], at: CropParams) -> NDArray[Any]:
        """Gather one ``size`` window per sample at ``at`` (one fancy-indexing operation)."""
        windows = _windows(padded, self.size)  # (N, C, rows, cols, h, w)
        out: NDArray[Any] = windows[np.arange(len(padded)), :, at.top, at.left]
        return out


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``. Shapes and dtype kept."""

    random = True

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_probability(p, "RandomHorizontalFlip")

    def draw(self, rng: np.random.Generator, n: int) -> NDArray[np.bool_]:
        return rng.random(n) < self.p

    def apply(self, batch: NDArray[Any], params: NDArray[np.bool_]) -> NDArray[Any]:
        _check_images(batch, "RandomHorizontalFlip")
        out: NDArray[Any] = batch.copy()
        flip = np.flatnonzero(params)
        out[flip] = mirror_columns(batch[flip])
        return out


class CropThenFlip(Transform):
    """``RandomCrop`` followed by ``RandomHorizontalFlip``, in one gather.

    ``Compose`` builds it from the adjacent pair. It draws the same numbers in the same order as
    the two steps and returns the same bytes; flipped samples are read through a mirrored view
    of the padded batch (a crop at ``left`` of the mirror image is the mirror of the crop at
    ``cols - 1 - left``), so no sample is copied twice.
    """

    random = True

    def __init__(self, crop: RandomCrop, flip: RandomHorizontalFlip) -> None:
        self.crop, self.flip = crop, flip

    def draw(self, rng: np.random.Generator, n: int) -> Any:
        return self.crop.draw(rng, n), self.flip.draw(rng, n)

    def apply(self, batch: NDArray[Any], params: Any) -> NDArray[Any]:
        crop_params, flips = params
        n, c, height, width = _check_images(batch, "RandomCrop")
        rows, cols = self.crop.positions(height, width)
        at = self.crop.offsets(crop_params, rows, cols)
        padded = self.crop.pad(batch)
        h, w = self.crop.size
        out: NDArray[Any] = batch_empty((n, c, h, w), batch.dtype)
        keep, mirror = np.flatnonzero(~flips), np.flatnonzero(flips)
        windows = _windows(padded, (h, w))
        out[keep] = windows[keep, :, at.top[keep], at.left[keep]]
        mirrored = _windows(padded[..., ::-1], (h, w))
        out[mirror] = mirrored[mirror, :, at.top[mirror], cols - 1 - at.left[mirror]]
        return out


class EraseParams(NamedTuple):
    """Rectangles to erase: ``apply``, ``top``, ``left``, ``height``, ``width``, each ``(N,)``."""

    apply: NDArray[np.bool_]
    top: NDArray[np.int64]
    left: NDArray[np.int64]
    height: NDArray[np.int64]
    width: NDArray[np.int64]


def _erase(batch: NDArray[Any], r: EraseParams, value: float, owner: str) -> NDArray[Any]:
    """Set each sample's rectangle to ``value`` through one broadcast mask."""
    fill = fill_of_dtype(value, batch.dtype, owner, name="value")
    _, _, height, width = batch.shape
    rows = np.arange(height)
    cols = np.arange(width)
    in_rows = (rows >= r.top[:, None]) & (rows < (r.top + r.height)[:, None]) & r.apply[:, None]
    in_cols = (cols >= r.left[:, None]) & (cols < (r.left + r.width)[:, None])
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (N, 1, H, W)
    out: NDArray[Any] = batch.copy()
    np.copyto(out, fill, where=mask)
    return out


class RandomErasing(Transform):
    """Erase a random rectangle with probability ``p`` (Zhong et al.; torchvision's defaults).

    The rectangle covers a fraction of the image drawn uniformly from ``scale`` with an aspect
    ratio drawn log-uniformly from ``ratio``; its sides are clipped to the image (torchvision
    instead retries up to 10 times to fit it, a per-sample loop), and its position is uniform
    over the places where it fits. ``value`` must fit the images' dtype (torchvision wraps 300
    around to 44 on uint8 images; here that is a ``ValueError``). Shapes and dtype kept.
    """

    random = True

    def __init__(
        self,
        p: float = 0.5,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: float = 0,
    ) -> None:
        self.p = check_probability(p, "RandomErasing")
        self.scale = check_interval(
            scale, "RandomErasing", "scale", minimum=0.0, maximum=1.0, exclusive_minimum=True
        )
        self.ratio = check_interval(ratio, "RandomErasing", "ratio", minimum=0.0, exclusive_minimum=True)
        self.value = check_fill(value, "RandomErasing", name="value")

    def draw(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        return rng.random((n, 5))

    def rectangles(self, uniform: NDArray[np.float64], height: int, width: int) -> EraseParams:
        """Turn the 5 uniform draws per sample into rectangles for an ``H x W`` image."""
        area = height * width * (self.scale[0] + uniform[:, 1] * (self.scale[1] - self.scale[0]))
        log_lo, log_hi = np.log(self.ratio[0]), np.log(self.ratio[1])
        aspect = np.exp(log_lo + uniform[:, 2] * (log_hi - log_lo))
        h = np.clip(np.round(np.sqrt(area * aspect)), 1, height).astype(np.int64)
        w = np.clip(np.round(np.sqrt(area / aspect)), 1, width).astype(np.int64)
        top = (uniform[:, 3] * (height - h + 1)).astype(np.int64)
        left = (uniform[:, 4] * (width - w + 1)).astype(np.int64)
        return EraseParams(uniform[:, 0] < self.p, top, left, h, w)

    def apply(self, batch: NDArray[Any], params: NDArray[np.float64]) -> NDArray[Any]:
        _, _, height, width = _check_images(batch, "RandomErasing")
        return _erase(batch, self.rectangles(params, height, width), self.value, "RandomErasing")


class Cutout(Transform):
    """Erase a ``size x size`` square centred uniformly on the image (DeVries & Taylor, 2017).

    The square is clipped where it crosses the border. Applied with probability ``p``.
    Shapes and dtype kept.
    """

    random = True

    def __init__(self, size: int, p: float = 1.0, value: float = 0) -> None:
        self.size = check_int(
            size, "Cutout size", minimum=1, hint="the side of the square in pixels, e.g. Cutout(8)"
        )
        self.p = check_probability(p, "Cutout")
        self.value = check_fill(value, "Cutout", name="value")

    def draw(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        return rng.random((n, 3))

    def apply(self, batch: NDArray[Any], params: NDArray[np.float64]) -> NDArray[Any]:
        _, _, height, width = _check_images(batch, "Cutout")
        cy = (params[:, 1] * height).astype(np.int64)
        cx = (params[:, 2] * width).astype(np.int64)
        top, left = np.maximum(cy - self.size // 2, 0), np.maximum(cx - self.size // 2, 0)
        bottom = np.minimum(cy - self.size // 2 + self.size, height)
        right = np.minimum(cx - self.size // 2 + self.size, width)
        rect = EraseParams(params[:, 0] < self.p, top, left, bottom - top, right - left)
        return _erase(batch, rect, self.value, "Cutout")


def mirror_columns(batch: NDArray[Any]) -> NDArray[Any]:
    """A copy of ``batch`` with its last axis reversed (images mirrored left-right).

    numpy reverses a row element by element; when rows are a multiple of 8 bytes, reversing
    them as 8-byte words and then the bytes within each word is the same permutation at a
    fraction of the cost for rows of up to 128 bytes (docs/benchmarks.md, "Augmented CIFAR epoch").
    """
    row = batch.shape[-1] * batch.itemsize if batch.ndim else 0
    if batch.itemsize != 1 or not 0 < row <= 128 or row % 8 or not batch.flags.c_contiguous:
        reversed_copy: NDArray[Any] = batch[..., ::-1].copy()
        return reversed_copy
    words = batch.view(np.uint64).reshape(-1, row // 8)
    out = np.empty_like(words)
    for j in range(row // 8):  # one strided column copy per word: 4 for a 32-byte row
        out[:, j] = words[:, row // 8 - 1 - j]
    out.byteswap(inplace=True)
    return out.view(batch.dtype).reshape(batch.shape)


def _windows(padded: NDArray[Any], size: tuple[int, int]) -> NDArray[Any]:
    """Read-only view ``(N, C, rows, cols, h, w)`` of every ``h x w`` window of ``padded``.

    What ``sliding_window_view(padded, size, axis=(2, 3))`` returns, built directly (the
    general function's argument checks cost more than the gather on small batches).
    """
    n, c, height, width = padded.shape
    h, w = size
    s0, s1, s2, s3 = padded.strides
    shape = (n, c, height - h + 1, width - w + 1, h, w)
    return as_strided(padded, shape=shape, strides=(s0, s1, s2, s3, s2, s3), writeable=False)


def _check_images(batch: NDArray[Any], owner: str) -> tuple[int, int, int, int]:
    if batch.ndim != 4:
        raise ValueError(f"{owner} works on images (C, H, W) or batches (N, C, H, W), got {batch.shape}")
    n, c, h, w = batch.shape
    return n, c, h, w
