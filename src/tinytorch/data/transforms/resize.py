"""Transforms for photos: ``Resize``, ``CenterCrop``, ``RandomResizedCrop`` (torchvision's).

Same names, arguments and semantics as ``torchvision.transforms.v2`` (output sizes, crop
anchors, the box-selection rule and its fallback), on uint8 or float32 ``(C, H, W)`` images,
``(N, C, H, W)`` batches, and **lists of images of different sizes** ``[(C, H_i, W_i), ...]``,
which is how a batch of decoded photos arrives (e.g. from an image folder). A list becomes one
``(N, C, h, w)`` array whenever the output size is fixed: ``Resize((h, w))``,
``CenterCrop(size)`` and ``RandomResizedCrop(size)`` do that; ``Resize(int)`` keeps each
image's aspect ratio and so returns a list again (follow it with ``CenterCrop``, as the usual
evaluation pipeline ``Resize(256)`` + ``CenterCrop(224)`` does).

Random parameters are drawn for the whole batch at once and turned into boxes with array
operations; what stays per image is one resampling call per plane (``transforms/resample.py``:
Pillow, which equals torchvision on PIL images and is within 1 of its antialiased tensor
kernel) or one slice copy (``CenterCrop``). The random stream is our own (numpy, from the
loader's per-batch generator), so the boxes are not torchvision's for the same seed; the rule
that turns draws into boxes is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.memory import batch_empty
from tinytorch.data.transforms.base import Transform
from tinytorch.data.transforms.checks import check_interval, check_size
from tinytorch.data.transforms.image import RandomHorizontalFlip
from tinytorch.data.transforms.resample import Boxes, check_interpolation, resized_crops
from tinytorch.data.validate import check_bool, check_int

__all__ = ["CenterCrop", "RandomResizedCrop", "Resize", "ResizedCropThenFlip", "image_sizes"]

Images = NDArray[Any] | Sequence[NDArray[Any]]
"""A batch ``(N, C, H, W)`` or a list of ``(C, H_i, W_i)`` arrays."""


def image_sizes(images: Images) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Heights and widths ``(N,)`` of a batch or a list of images."""
    if isinstance(images, np.ndarray):
        n, _, height, width = images.shape
        return np.full(n, height, np.int64), np.full(n, width, np.int64)
    heights = np.fromiter((x.shape[1] for x in images), np.int64, len(images))
    widths = np.fromiter((x.shape[2] for x in images), np.int64, len(images))
    return heights, widths


def _check_antialias(antialias: object, owner: str) -> bool:
    if not check_bool(antialias, f"{owner} antialias"):
        raise ValueError(
            f"{owner}(antialias=False) is not available: resampling uses Pillow, which always "
            "filters when it shrinks an image (torchvision's default too, antialias=True)"
        )
    return True


class Resize(Transform):
    """Resize images to ``size`` (torchvision's ``Resize``).

    Args:
        size: ``(h, w)``: that size. An int ``s`` (or ``[s]``): the smaller edge becomes ``s``
            and the longer one ``int(s * long / short)``, keeping the aspect ratio. ``None``:
            only ``max_size`` applies (the longer edge becomes ``max_size``).
        interpolation: ``"bilinear"`` (default), ``"bicubic"`` or ``"nearest"`` (or
            torchvision's ``InterpolationMode``). torchvision's tensor kernel for
            ``"nearest"`` picks other pixels than Pillow's; its ``"nearest-exact"`` matches.
        max_size: with an int or ``None`` size, the longer edge is capped at ``max_size``
            (the shorter one scaled down to keep the ratio), as in torchvision.
        antialias: ``True`` only (Pillow always filters when shrinking).

    Shapes: ``(C, H, W)`` -> ``(C, h, w)``; ``(N, C, H, W)`` -> ``(N, C, h, w)``; a list of
    ``(C, H_i, W_i)`` -> ``(N, C, h, w)`` with ``size=(h, w)``, else a list of
    ``(C, h_i, w_i)``. dtype kept (uint8 or float32).
    """

    takes_lists = True

    def __init__(
        self,
        size: int | Sequence[int] | None,
        interpolation: Any = "bilinear",
        max_size: int | None = None,
        antialias: bool = True,
    ) -> None:
        self.size: tuple[int, int] | int | None
        if size is None:
            if max_size is None:
                raise ValueError("Resize(size=None) needs max_size=: the longer edge's length")
            self.size = None
        elif isinstance(size, (int, np.integer)) or (isinstance(size, (tuple, list)) and len(size) == 1):
            self.size = check_size(size, "Resize")[0]
        else:
            self.size = check_size(size, "Resize")
            if max_size is not None:
                raise ValueError(
                    f"Resize max_size applies to an int size (the smaller edge), got size={size!r}; "
                    "drop max_size, or pass size=<int>"
                )
        self.max_size = None if max_size is None else check_int(max_size, "Resize max_size", minimum=1)
        if isinstance(self.size, int) and self.max_size is not None and self.max_size <= self.size:
            raise ValueError(
                f"Resize max_size={self.max_size} must be larger than size={self.size} (the smaller edge)"
            )
        self.interpolation = check_interpolation(interpolation, "Resize")
        self.antialias = _check_antialias(antialias, "Resize")

    def output_sizes(
        self, heights: NDArray[np.int64], widths: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Output heights and widths for inputs of these sizes (torchvision's rule)."""
        if isinstance(self.size, tuple):
            return np.full_like(heights, self.size[0]), np.full_like(widths, self.size[1])
        portrait = widths <= heights
        short = np.where(portrait, widths, heights)
        long = np.where(portrait, heights, widths)
        if self.size is None:
            assert self.max_size is not None
            new_short = np.floor(self.max_size * short / long).astype(np.int64)
            new_long = np.full_like(long, self.max_size)
        else:
            new_short = np.full_like(short, self.size)
            new_long = np.floor(self.size * long / short).astype(np.int64)
            if self.max_size is not None:
                capped = new_long > self.max_size
                new_short = np.where(capped, np.floor(self.max_size * new_short / new_long), new_short)
                new_long = np.where(capped, self.max_size, new_long)
        new_short, new_long = new_short.astype(np.int64), new_long.astype(np.int64)
        return np.where(portrait, new_long, new_short), np.where(portrait, new_short, new_long)

    def apply(self, batch: Images, params: Any) -> NDArray[Any] | list[NDArray[Any]]:
        heights, widths = image_sizes(batch)
        whole = Boxes(np.zeros_like(heights), np.zeros_like(widths), heights, widths)
        if isinstance(batch, np.ndarray):  # one input size: one output size, also for N = 0
            one_h, one_w = self.output_sizes(np.array(batch.shape[-2:-1]), np.array(batch.shape[-1:]))
            return resized_crops(batch, whole, (int(one_h[0]), int(one_w[0])), self.interpolation)
        out_h, out_w = self.output_sizes(heights, widths)
        if isinstance(self.size, tuple):
            return resized_crops(batch, whole, (int(out_h[0]), int(out_w[0])), self.interpolation)
        return [
            resized_crops(
                [image], Boxes(*(b[i : i + 1] for b in whole)), (int(h), int(w)), self.interpolation
            )[0]
            for i, (image, h, w) in enumerate(zip(batch, out_h.tolist(), out_w.tolist(), strict=True))
        ]


class CenterCrop(Transform):
    """Crop the centre ``size`` of each image (torchvision's ``CenterCrop``).

    The crop starts ``round((H - h) / 2)`` rows down (Python's round: halves to even) and
    likewise across. An image smaller than ``size`` along an axis is padded with zeros on
    both sides first, ``(h - H) // 2`` before it, the rest after, as torchvision does.

    Args:
        size: ``(h, w)``, or an int for a square.

    Shapes: ``(C, H, W)`` -> ``(C, h, w)``; ``(N, C, H, W)`` or a list of ``(C, H_i, W_i)``
    -> ``(N, C, h, w)``. dtype kept. A batch is one slice copy; a list one per image.
    """

    takes_lists = True

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = check_size(size, "CenterCrop")

    @staticmethod
    def anchors(lengths: NDArray[np.int64], crop: int) -> NDArray[np.int64]:
        """First source index of the crop along an axis of these lengths; negative where the
        image is padded (then ``-anchor`` zeros come before it)."""
        centred = np.rint((lengths - crop) / 2.0).astype(np.int64)  # rint: halves to even, as round()
        return np.where(lengths >= crop, centred, -((crop - lengths) // 2))

    def apply(self, batch: Images, params: Any) -> NDArray[Any]:
        h, w = self.size
        if isinstance(batch, np.ndarray):  # one anchor for the whole batch, also for N = 0
            n, channels, height, width = batch.shape
            out = batch_empty((n, channels, h, w), batch.dtype)
            top = self.anchors(np.array([height]), h)
            left = self.anchors(np.array([width]), w)
            _crop_into(out, batch, int(top[0]), int(left[0]))
            return out
        heights, widths = image_sizes(batch)
        tops, lefts = self.anchors(heights, h), self.anchors(widths, w)
        channels, dtype = batch[0].shape[0], batch[0].dtype
        out = batch_empty((len(batch), channels, h, w), dtype)
        for i, (image, top, left) in enumerate(zip(batch, tops.tolist(), lefts.tolist(), strict=True)):
            if image.shape[0] != channels or image.dtype != dtype:
                raise ValueError(
                    f"CenterCrop needs images of one channel count and dtype: image 0 is "
                    f"({channels}, ...) {dtype}, image {i} is {image.shape} {image.dtype}"
                )
            _crop_into(out[i], image, top, left)
        return out


def _crop_into(out: NDArray[Any], source: NDArray[Any], top: int, left: int) -> None:
    """``out[..., y, x] = source[..., top + y, left + x]``, zero where that is outside."""
    h, w = out.shape[-2:]
    height, width = source.shape[-2:]
    y0, x0 = max(0, -top), max(0, -left)  # where the image starts in the output
    y1, x1 = min(h, height - top), min(w, width - left)
    if (y0, x0, y1, x1) != (0, 0, h, w):
        out[...] = 0
    out[..., y0:y1, x0:x1] = source[..., top + y0 : top + y1, left + x0 : left + x1]


class RandomResizedCrop(Transform):
    """Crop a random box of random area and aspect ratio, resized to ``size`` (Szegedy et al.,
    2015; torchvision's ``RandomResizedCrop``).

    The box rule is torchvision's: up to 10 attempts, each drawing an area fraction uniformly
    from ``scale`` and an aspect ratio (width / height) log-uniformly from ``ratio``, with
    sides ``round(sqrt(area * ratio))`` x ``round(sqrt(area / ratio))``; the first attempt
    that fits in the image is placed uniformly at random. If none fits, the fallback is a
    central crop: the whole image when its aspect ratio is within ``ratio``, else the largest
    centred box of the nearest bound of ``ratio``. All 10 attempts are drawn for every sample
    (22 uniforms per sample, however many attempts are needed), so the output is a pure
    function of the generator, and the rule runs vectorized over the batch.

    Args:
        size: output ``(h, w)``, or an int for a square.
        scale: ``(lo, hi)``, the fraction of the image's area, ``0 <= lo <= hi``.
        ratio: ``(lo, hi)``, the aspect ratio's range, ``0 < lo <= hi``.
        interpolation: ``"bilinear"`` (default), ``"bicubic"`` or ``"nearest"``.
        antialias: ``True`` only (Pillow always filters when shrinking).

    Shapes: ``(C, H, W)`` -> ``(C, h, w)``; ``(N, C, H, W)`` or a list of ``(C, H_i, W_i)``
    -> ``(N, C, h, w)``. dtype kept (uint8 or float32).
    """

    random = True
    takes_lists = True
    ATTEMPTS = 10

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: Any = "bilinear",
        antialias: bool = True,
    ) -> None:
        self.size = check_size(size, "RandomResizedCrop")
        self.scale = check_interval(scale, "RandomResizedCrop", "scale", minimum=0.0)
        if self.scale[1] == 0:
            raise ValueError(
                "RandomResizedCrop scale must allow a positive area, got (0, 0); e.g. scale=(0.08, 1.0)"
            )
        self.ratio = check_interval(ratio, "RandomResizedCrop", "ratio", minimum=0.0, exclusive_minimum=True)
        self.interpolation = check_interpolation(interpolation, "RandomResizedCrop")
        self.antialias = _check_antialias(antialias, "RandomResizedCrop")

    def draw(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        """``(n, 22)`` uniforms in ``[0, 1)``: per sample, 10 area fractions, 10 aspect ratios,
        and the box's vertical and horizontal position."""
        return rng.random((n, 2 * self.ATTEMPTS + 2))

    def boxes(
        self, uniform: NDArray[np.float64], heights: NDArray[np.int64], widths: NDArray[np.int64]
    ) -> Boxes:
        """The boxes of the draws ``uniform`` ``(N, 22)`` in images of these sizes ``(N,)``.

        Pure and vectorized; a decoder that knows image sizes before decoding (JPEG headers)
        can call it to decode only what the box needs.
        """
        k = self.ATTEMPTS
        heights, widths = np.asarray(heights, np.int64), np.asarray(widths, np.int64)
        area = (heights * widths).astype(np.float64)[:, None]
        target = area * (self.scale[0] + uniform[:, :k] * (self.scale[1] - self.scale[0]))
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = np.exp(log_lo + uniform[:, k : 2 * k] * (log_hi - log_lo))
        w = np.rint(np.sqrt(target * aspect)).astype(np.int64)  # rint: halves to even, as round()
        h = np.rint(np.sqrt(target / aspect)).astype(np.int64)
        fits = (w > 0) & (w <= widths[:, None]) & (h > 0) & (h <= heights[:, None])
        found = fits.any(axis=1)
        attempt = np.argmax(fits, axis=1)  # the first attempt that fits
        rows = np.arange(len(uniform))
        h, w = h[rows, attempt], w[rows, attempt]
        top = _uniform_int(uniform[:, 2 * k], heights - h + 1)
        left = _uniform_int(uniform[:, 2 * k + 1], widths - w + 1)
        if not found.all():
            fh, fw = self._fallback(heights, widths)
            h, w = np.where(found, h, fh), np.where(found, w, fw)
            top = np.where(found, top, (heights - h) // 2)
            left = np.where(found, left, (widths - w) // 2)
        return Boxes(top, left, h, w)

    def _fallback(
        self, heights: NDArray[np.int64], widths: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Box sizes of the central crop used when no attempt fits.

        At least 1 x 1: for an image a pixel or two wide and a ratio far from its own,
        torchvision's rule rounds a side to 0 (and then fails to resize an empty box).
        """
        lo, hi = self.ratio
        in_ratio = widths / heights
        h = np.where(in_ratio < lo, np.maximum(np.rint(widths / lo), 1), heights).astype(np.int64)
        w = np.where(in_ratio > hi, np.maximum(np.rint(heights * hi), 1), widths).astype(np.int64)
        return h, w

    def apply(self, batch: Images, params: NDArray[np.float64]) -> NDArray[Any]:
        heights, widths = image_sizes(batch)
        return resized_crops(batch, self.boxes(params, heights, widths), self.size, self.interpolation)


class ResizedCropThenFlip(Transform):
    """``RandomResizedCrop`` followed by ``RandomHorizontalFlip``, fused by ``Compose``.

    Draws the same numbers in the same order as the two steps and returns the same bytes;
    each flipped output is written mirrored as it leaves the resampler, instead of the flip
    copying the whole ``(N, C, h, w)`` batch again.
    """

    random = True
    takes_lists = True

    def __init__(self, crop: RandomResizedCrop, flip: RandomHorizontalFlip) -> None:
        self.crop, self.flip = crop, flip

    def draw(self, rng: np.random.Generator, n: int) -> Any:
        return self.crop.draw(rng, n), self.flip.draw(rng, n)

    def apply(self, batch: Images, params: Any) -> NDArray[Any]:
        uniform, flips = params
        heights, widths = image_sizes(batch)
        boxes = self.crop.boxes(uniform, heights, widths)
        return resized_crops(batch, boxes, self.crop.size, self.crop.interpolation, flips=flips)


def _uniform_int(u: NDArray[np.float64], n: NDArray[np.int64]) -> NDArray[np.int64]:
    """``floor(u * n)`` clipped to ``n - 1``: a uniform integer in ``[0, n)`` from ``u`` in ``[0, 1)``."""
    return np.minimum((u * n).astype(np.int64), np.maximum(n - 1, 0))
