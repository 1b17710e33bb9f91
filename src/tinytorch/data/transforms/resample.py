"""Crop a box out of each image and resample it to one size, with Pillow.

The resampling of ``Resize`` and ``RandomResizedCrop``. Each image plane goes through one
``PIL.Image.resize(size, resample)`` call on the cropped box, which filters when it shrinks
(antialiasing: the filter's support grows with the scale factor) and releases the GIL, so
thread workers resize in parallel. The box is cropped first (a view, copied only when it is
narrower than the image), so edge pixels are handled as in torchvision's ``resized_crop``.

Pillow was chosen after measuring it against a vectorized numpy implementation of the same
separable filter on 500 x 375 -> 224 x 224 photos (``benchmarks/bench_resize.py``; figures in
``docs/benchmarks.md``); it is also what torchvision uses for PIL images, so outputs equal
torchvision's on PIL images and are within 1 (uint8) of torchvision's antialiased tensor
kernel, which was written to match Pillow.

Planes are resized one by one (``"L"`` for uint8, ``"F"`` for float32): a ``(C, H, W)``
plane is contiguous, so Pillow reads it without a copy, where an RGB image would first be
transposed to ``(H, W, C)`` and back. An image laid out ``(H, W, 3)`` in memory (a transposed
view of a decoded photo) goes through Pillow as one RGB image instead, which reads that layout
directly. Both give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.memory import batch_empty

__all__ = ["Boxes", "Interpolation", "check_interpolation", "resized_crops"]

Interpolation = Literal["nearest", "bilinear", "bicubic"]
_MODES: tuple[Interpolation, ...] = ("nearest", "bilinear", "bicubic")


class Boxes(NamedTuple):
    """One source rectangle per image, in pixels: ``top``, ``left``, ``height``, ``width``.

    Each an ``(N,)`` int64 array; torchvision's ``(top, left, height, width)`` of
    ``resized_crop``.
    """

    top: NDArray[Any]
    left: NDArray[Any]
    height: NDArray[Any]
    width: NDArray[Any]


def check_interpolation(value: object, owner: str) -> Interpolation:
    """``"nearest"``, ``"bilinear"`` or ``"bicubic"`` from a string or torchvision's
    ``InterpolationMode`` (whose ``.value`` is that string)."""
    name = getattr(value, "value", value)
    if isinstance(name, str) and name.lower() in _MODES:
        return _MODES[_MODES.index(name.lower())]
    raise ValueError(
        f"{owner} interpolation must be 'nearest', 'bilinear' or 'bicubic' (or torchvision's "
        f"InterpolationMode of one of them), got {value!r}"
    )


def resized_crops(
    images: NDArray[Any] | Sequence[NDArray[Any]],
    boxes: Boxes,
    size: tuple[int, int],
    interpolation: Interpolation = "bilinear",
    flips: NDArray[np.bool_] | None = None,
) -> NDArray[Any]:
    """Crop ``boxes[i]`` out of ``images[i]`` and resample it to ``size``, for every ``i``.

    Args:
        images: ``(N, C, H, W)``, or a sequence of ``N`` arrays ``(C, H_i, W_i)`` with one
            ``C`` and dtype; uint8 or float32.
        boxes: one box per image, inside it, of positive height and width.
        size: output ``(h, w)``.
        interpolation: Pillow's filter of that name.
        flips: ``(N,)`` bools: output ``i`` is mirrored left-right where ``flips[i]`` (the
            same bytes as flipping afterwards, without another pass over the batch).

    Returns:
        ``(N, C, h, w)`` of the input dtype (in the batch's shared memory inside a worker).
        A box of exactly ``size`` is copied, not resampled (what resampling would return).

    Raises:
        TypeError: a dtype other than uint8 and float32, or boxes that are not integers.
        ValueError: images with different channel counts or dtypes, or a box that is empty or
            not inside its image.
    """
    try:
        from PIL import Image  # imported on first use: most pipelines never resize
    except ImportError as e:
        raise ImportError("Resize and RandomResizedCrop resample with Pillow: pip install Pillow") from e

    n = len(images)
    # An array's channels and dtype are its own, also for an empty batch (N = 0).
    first = images if isinstance(images, np.ndarray) else images[0]
    channels, dtype = first.shape[-3], first.dtype
    if dtype not in (np.uint8, np.float32):
        raise TypeError(
            f"resizing takes uint8 or float32 images, got {dtype}; convert them first "
            "(x.astype(numpy.float32)), or resize before ToFloat/Normalize"
        )
    h, w = size
    out = batch_empty((n, channels, h, w), dtype)
    resample = {
        "nearest": Image.Resampling.NEAREST,
        "bilinear": Image.Resampling.BILINEAR,
        "bicubic": Image.Resampling.BICUBIC,
    }[interpolation]
    plane_mode = "L" if dtype == np.uint8 else "F"
    if any(np.asarray(b).dtype.kind not in "iu" for b in boxes):
        raise TypeError(
            f"boxes must be integer arrays (pixels), got {[np.asarray(b).dtype.name for b in boxes]}"
        )
    tops, lefts, heights, widths = (np.asarray(b).tolist() for b in boxes)
    if not len(tops) == len(lefts) == len(heights) == len(widths) == n:
        raise ValueError(f"resizing needs one box per image: {n} images, {len(tops)} boxes")
    for i in range(n):
        image = images[i]
        if image.shape[0] != channels or image.dtype != dtype:
            raise ValueError(
                f"resizing needs images of one channel count and dtype: image 0 is ({channels}, ...) "
                f"{dtype}, image {i} is {image.shape} {image.dtype}"
            )
        top, left, bh, bw = tops[i], lefts[i], heights[i], widths[i]
        rows, cols = image.shape[1:]
        if min(top, left) < 0 or min(bh, bw) <= 0 or top + bh > rows or left + bw > cols:
            raise ValueError(
                f"box {i} (top={top}, left={left}, height={bh}, width={bw}) is not inside its image "
                f"of {rows} x {cols} pixels"
            )
        mirror = flips is not None and bool(flips[i])
        if (bh, bw) == (h, w):
            region = image[:, top : top + h, left : left + w]
            out[i] = region[..., ::-1] if mirror else region
            continue
        # Crop first, then resize the crop: the filter sees no pixels outside the box, as in
        # torchvision's resized_crop (Pillow's resize(box=...) would read beyond its edges).
        hwc = image.transpose(1, 2, 0)
        if channels == 3 and dtype == np.uint8 and hwc.flags.c_contiguous:
            # Pillow reads the box's rows straight from the image (its raw decoder's row stride)
            # and hands back one plane per channel: no copy of the box before, no channels-last
            # array after (~0.25 ms less per 500 x 375 photo than copying both ways).
            start = (top * cols + left) * 3
            data = hwc.reshape(-1)[start:]  # a view: C-contiguous
            rgb = Image.frombuffer("RGB", (bw, bh), data, "raw", "RGB", cols * 3, 1)
            for c, band in enumerate(rgb.resize((w, h), resample).split()):
                plane = np.asarray(band)
                out[i, c] = plane[:, ::-1] if mirror else plane
            continue
        region = image[:, top : top + bh, left : left + bw]
        for c in range(channels):
            plane = np.ascontiguousarray(region[c])  # a copy only where the box is narrower than the image
            source = Image.frombuffer(plane_mode, (bw, bh), plane, "raw", plane_mode, 0, 1)
            resized = np.asarray(source.resize((w, h), resample))
            out[i, c] = resized[:, ::-1] if mirror else resized
    return out
