"""``ToFloat`` and ``Normalize``: uint8 images to normalized float32, per channel.

Every normalization of the package (``Normalize``, the fused steps, ``Normalizer``) computes
``out = x * scale + shift`` with ``scale = 1 / std`` and ``shift = -mean / std``: the
coefficients come from :func:`affine_coefficients` and the pass from :func:`affine`, so there
is one formula. ``Compose([ToFloat(), Normalize(mean, std)])`` is fused into one
:class:`ToFloatNormalize` that reads uint8 and writes the float32 output once, with the 1/255
folded into ``scale``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinytorch.data.memory import batch_empty
from tinytorch.data.transforms.base import Transform

__all__ = ["Normalize", "ToFloat", "ToFloatNormalize", "affine", "affine_coefficients"]


def _statistic(values: ArrayLike, name: str) -> NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"Normalize {name} must be numbers, one per channel (or one for all), got {values!r}; "
            f"e.g. Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))"
        ) from e
    return np.atleast_1d(array)


def _integer_scale(dtype: np.dtype[Any]) -> float:
    """1 / max for unsigned/signed integer dtypes (uint8: 1/255); 1 for floats."""
    if np.issubdtype(dtype, np.integer):
        return 1.0 / float(np.iinfo(dtype).max)
    return 1.0


def affine_coefficients(
    mean: NDArray[np.float64], std: NDArray[np.float64], input_scale: float = 1.0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(scale, shift)`` in float64 with ``(x * input_scale - mean) / std == x * scale + shift``.

    ``mean`` and ``std`` broadcast against each other; ``std`` must be positive.
    """
    scale: NDArray[np.float64] = input_scale / std
    shift: NDArray[np.float64] = -mean / std
    return scale, shift


def affine(
    batch: NDArray[Any], scale: NDArray[Any], shift: NDArray[Any], dtype: Any = np.float32
) -> NDArray[Any]:
    """``batch * scale + shift`` in a new ``dtype`` array: one cast pass into the output (placed
    in the batch's shared memory inside a worker), then an in-place multiply and add.

    ``scale`` and ``shift`` (already of ``dtype``) broadcast against ``batch``.
    """
    out = batch_empty(batch.shape, dtype)
    out[...] = batch
    out *= scale
    out += shift
    return out


class ToFloat(Transform):
    """Integer images to float32 in ``[0, 1]`` (uint8: divided by 255); floats cast to float32.

    Shapes: ``(C, H, W)`` or ``(N, C, H, W)`` in, the same shape out, float32.
    """

    def apply(self, batch: NDArray[Any], params: Any) -> NDArray[np.float32]:
        out = batch_empty(batch.shape, np.float32)
        out[...] = batch
        scale = _integer_scale(batch.dtype)
        if scale != 1.0:
            out *= np.float32(scale)
        return out


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` for each channel ``c``; output float32.

    Args:
        mean: one value per channel (or one for all), in the scale of the input.
        std: one positive value per channel (or one for all).

    Shapes: ``(C, H, W)`` or ``(N, C, H, W)`` in, the same shape out, float32. Computed as
    ``x * (1 / std) + (-mean / std)`` (:func:`affine`).

    Raises:
        ValueError: ``std`` has a non-positive entry, or the input's channel count differs
            from the number of means.
    """

    def __init__(self, mean: ArrayLike, std: ArrayLike) -> None:
        self.mean = _statistic(mean, "mean")
        self.std = _statistic(std, "std")
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError("Normalize takes one mean and one std per channel (1-D sequences)")
        if len(self.mean) == 0 or len(self.std) == 0:
            raise ValueError(
                f"Normalize needs at least one mean and one std, got mean={self.mean.tolist()} "
                f"std={self.std.tolist()}; e.g. Normalize(mean=(0.485, 0.456, 0.406), "
                "std=(0.229, 0.224, 0.225))"
            )
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(
                f"Normalize got {len(self.mean)} means and {len(self.std)} stds; pass one of each per channel"
            )
        if np.any(self.std <= 0) or not np.all(np.isfinite(self.std)):
            raise ValueError(f"Normalize std must be positive and finite, got {self.std.tolist()}")
        if not np.all(np.isfinite(self.mean)):
            raise ValueError(f"Normalize mean must be finite, got {self.mean.tolist()}")
        self._coefficients: dict[tuple[int, str], tuple[NDArray[np.float32], NDArray[np.float32]]] = {}

    def input_scale(self, dtype: np.dtype[Any]) -> float:
        """Factor applied to the input before normalizing: 1 here (see :class:`ToFloatNormalize`)."""
        return 1.0

    def coefficients(
        self, channels: int, dtype: np.dtype[Any]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Per-channel ``(scale, shift)`` with ``out = x * scale + shift``, shaped ``(C, 1, 1)``.

        Computed once per channel count and input dtype (a dict write is atomic, so thread
        workers sharing the transform may at worst compute it twice).
        """
        key = (channels, dtype.str)
        cached = self._coefficients.get(key)
        if cached is not None:
            return cached
        n = max(len(self.mean), len(self.std))
        if n != 1 and n != channels:
            raise ValueError(
                f"Normalize has statistics for {n} channels but the input has {channels} "
                "(channel axis: 1 of (N, C, H, W), 0 of (C, H, W))"
            )
        mean = np.broadcast_to(self.mean, (channels,))
        std = np.broadcast_to(self.std, (channels,))
        scale, shift = affine_coefficients(mean, std, self.input_scale(dtype))
        result = (
            scale.astype(np.float32).reshape(-1, 1, 1),
            shift.astype(np.float32).reshape(-1, 1, 1),
        )
        self._coefficients[key] = result
        return result

    def apply(self, batch: NDArray[Any], params: Any) -> NDArray[np.float32]:
        if batch.ndim < 2:
            raise ValueError(f"Normalize needs a channel axis, got shape {batch.shape[1:]}")
        scale, shift = self.coefficients(batch.shape[1], batch.dtype)
        return affine(batch, scale, shift, np.float32)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class ToFloatNormalize(Normalize):
    """``ToFloat()`` followed by ``Normalize(mean, std)``, fused by ``Compose``.

    Integer input is scaled to ``[0, 1]`` as part of the normalization (the 1/255 of uint8 is
    folded into the scale, so values can differ from the two steps by 1 ulp); float input is
    normalized as it is, as ``ToFloat`` would leave it. One cast and one multiply-add pass.
    """

    def input_scale(self, dtype: np.dtype[Any]) -> float:
        return _integer_scale(dtype)

    def __repr__(self) -> str:
        return f"ToFloat+{super().__repr__()}"
