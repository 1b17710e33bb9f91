"""``Normalizer``: fit mean and standard deviation on training data, apply them everywhere.

The seed's fit/transform pattern, made exact and streaming: statistics are accumulated in
float64 chunk by chunk (never a float copy of the whole dataset) and merged with the
parallel-variance formula of Chan, Golub and LeVeque, so ``partial_fit`` over the batches of
a DataLoader gives the same result as ``fit`` on the full array.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinytorch.data.transforms.base import Transform
from tinytorch.data.transforms.normalize import affine, affine_coefficients

__all__ = ["Moments", "Normalizer"]

Mode = Literal["per_feature", "per_channel"]
CHUNK_BYTES = 32 << 20


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations (``M2``) of a set of values, per statistic.

    ``mean`` and ``m2`` are float64 arrays of the statistics' shape.
    """

    count: int
    mean: NDArray[np.float64]
    m2: NDArray[np.float64]

    @staticmethod
    def of(values: NDArray[Any], axes: tuple[int, ...]) -> Moments:
        """Moments of ``values`` reduced over ``axes``, computed in float64."""
        x = values.astype(np.float64)
        count = int(np.prod([values.shape[a] for a in axes]))
        mean = x.mean(axis=axes)
        deviation = x - np.expand_dims(mean, axes)
        return Moments(count, mean, (deviation * deviation).sum(axis=axes))

    def merge(self, other: Moments) -> Moments:
        """The moments of the union of both sets (exact up to float64 rounding)."""
        if self.count == 0:
            return other
        if other.count == 0:
            return self
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / n)
        return Moments(n, mean, m2)


class Normalizer(Transform):
    """Standardize data with statistics fitted on training data: ``(x - mean) / std``.

    Args:
        mode: ``"per_feature"`` (the seed's behaviour): one mean/std per feature, statistics
            over axis 0, so ``mean.shape == data.shape[1:]``. ``"per_channel"``: for images
            ``(N, C, H, W)``, one mean/std per channel over ``N, H, W`` (``mean.shape == (C,)``),
            the usual choice for RGB images.
        eps: features whose standard deviation is at most ``eps`` are only centred (divided by
            1), so a constant feature maps to 0 instead of exploding.
        dtype: output dtype of :meth:`transform` (float32 by default).

    Attributes (after fitting):
        mean, std: float64 arrays; ``std`` is the population standard deviation (ddof=0).
        count: values per statistic seen so far.

    Usable as a dataset ``transform=`` (one sample) or a loader ``batch_transform=`` (a batch,
    or an ``(images, labels)`` batch whose first item is normalized).
    """

    def __init__(self, mode: Mode = "per_feature", eps: float = 1e-8, dtype: Any = np.float32) -> None:
        if mode not in ("per_feature", "per_channel"):
            raise ValueError(f"Normalizer mode must be 'per_feature' or 'per_channel', got {mode!r}")
        self.mode: Mode = mode
        self.eps = float(eps)
        self.dtype = np.dtype(dtype)
        self._moments: Moments | None = None

    # ---- fitting ----------------------------------------------------------------------------

    def _axes(self, x: NDArray[Any]) -> tuple[int, ...]:
        if self.mode == "per_feature":
            if x.ndim < 1:
                raise ValueError("Normalizer.fit needs data with a sample axis, got a scalar")
            return (0,)
        if x.ndim != 4:
            raise ValueError(
                f"Normalizer(mode='per_channel') fits images (N, C, H, W), got shape {x.shape}; "
                "use mode='per_feature' for other data"
            )
        return (0, 2, 3)

    def partial_fit(self, batch: ArrayLike) -> Normalizer:
        """Add a batch of samples to the statistics (chunked; no float copy of the whole batch).

        A ``(data, labels, ...)`` tuple or list fits on its first item, so DataLoader batches
        can be passed as they are.
        """
        x = _first(batch)
        axes = self._axes(x)
        rows = max(1, CHUNK_BYTES // max(1, x[:1].size * 8))
        for start in range(0, len(x), rows):
            part = Moments.of(x[start : start + rows], axes)
            if self._moments is not None and part.mean.shape != self._moments.mean.shape:
                raise ValueError(
                    f"Normalizer.partial_fit got data with statistics of shape {part.mean.shape} "
                    f"(input {x.shape}), but earlier data gave {self._moments.mean.shape}; pass "
                    "samples of one shape, or call fit() to start over"
                )
            self._moments = part if self._moments is None else self._moments.merge(part)
        return self

    def fit(self, data: ArrayLike | Iterable[Any]) -> Normalizer:
        """Fit on ``data``: an array(-like) ``(N, ...)``, or an iterable of batches (a DataLoader).

        Forgets earlier statistics. Returns ``self``.
        """
        self._moments = None
        array_like = isinstance(data, (np.ndarray, list, tuple)) or hasattr(data, "__array__")
        if array_like or not isinstance(data, Iterable):
            return self.partial_fit(data)  # type: ignore[arg-type]
        batches = 0
        for batch in data:
            self.partial_fit(batch)
            batches += 1
        if batches == 0:
            raise ValueError("Normalizer.fit got an iterable with no batches")
        return self

    # ---- statistics -------------------------------------------------------------------------

    def _fitted(self, action: str) -> Moments:
        if self._moments is None or self._moments.count == 0:
            raise ValueError(
                f"Normalizer.{action} needs fitted statistics: call fit(train_data) (or "
                "partial_fit per batch, or load_state_dict) first"
            )
        return self._moments

    @property
    def mean(self) -> NDArray[np.float64]:
        """Fitted means: ``data.shape[1:]`` per feature, ``(C,)`` per channel."""
        return self._fitted("mean").mean

    @property
    def std(self) -> NDArray[np.float64]:
        """Fitted population standard deviations, same shape as :attr:`mean`."""
        m = self._fitted("std")
        return np.sqrt(m.m2 / m.count)

    @property
    def count(self) -> int:
        """Number of values behind each statistic (0 before fitting)."""
        return 0 if self._moments is None else self._moments.count

    def _scale(self) -> NDArray[np.float64]:
        std = self.std
        return np.where(std > self.eps, std, 1.0)

    # ---- transforming -----------------------------------------------------------------------

    def _broadcast(self, stat: NDArray[np.float64], x: NDArray[Any], action: str) -> NDArray[Any]:
        """``stat`` shaped to broadcast against ``x`` (one sample or a batch)."""
        if self.mode == "per_channel":
            if x.ndim not in (3, 4) or x.shape[-3] != len(stat):
                raise ValueError(
                    f"Normalizer.{action}: fitted on images with {len(stat)} channels, got shape "
                    f"{x.shape}; expected (C, H, W) or (N, C, H, W) with C = {len(stat)}"
                )
            return stat.reshape(-1, 1, 1)
        if x.shape != stat.shape and x.shape[1:] != stat.shape:
            raise ValueError(
                f"Normalizer.{action}: fitted on samples of shape {stat.shape}, got data of shape "
                f"{x.shape}; expected one sample {stat.shape} or a batch (N, *{stat.shape})"
            )
        return stat

    def transform(self, data: ArrayLike) -> NDArray[Any]:
        """``(x - mean) / std`` in :attr:`dtype`, for one sample or a batch.

        Computed as ``Normalize`` computes it (``x * (1 / std) + (-mean / std)``, see
        ``transforms/normalize.py``): per channel, the output is byte-identical to
        ``Normalize(mean, std)`` with the fitted statistics.
        """
        x = np.asarray(data)
        scale, shift = affine_coefficients(self.mean, self._scale())
        return affine(
            x,
            self._broadcast(scale, x, "transform").astype(self.dtype),
            self._broadcast(shift, x, "transform").astype(self.dtype),
            self.dtype,
        )

    def inverse_transform(self, data: ArrayLike) -> NDArray[np.float64]:
        """``x * std + mean`` (float64): undoes :meth:`transform` up to float rounding."""
        x = np.asarray(data, dtype=np.float64)
        scale = self._broadcast(self._scale(), x, "inverse_transform")
        out: NDArray[np.float64] = x * scale + self._broadcast(self.mean, x, "inverse_transform")
        return out

    def fit_transform(self, data: ArrayLike) -> NDArray[Any]:
        """``fit(data)`` then ``transform(data)``."""
        return self.fit(data).transform(data)

    def apply(self, batch: NDArray[Any], params: Any) -> NDArray[Any]:
        return self.transform(batch)

    def __call__(self, data: Any, rng: np.random.Generator | None = None) -> Any:
        if isinstance(data, (tuple, list)):
            return super().__call__(data, rng)
        return self.transform(data)

    # ---- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The fitted state as plain JSON-serializable values."""
        m = self._fitted("state_dict")
        return {
            "mode": self.mode,
            "eps": self.eps,
            "dtype": self.dtype.str,
            "count": m.count,
            "shape": list(m.mean.shape),
            "mean": m.mean.ravel().tolist(),
            "m2": m.m2.ravel().tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> Normalizer:
        """Restore what :meth:`state_dict` returned. Returns ``self``."""
        try:
            shape = tuple(state["shape"])
            mean = np.asarray(state["mean"], dtype=np.float64).reshape(shape)
            m2 = np.asarray(state["m2"], dtype=np.float64).reshape(shape)
            mode, count = state["mode"], int(state["count"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"Normalizer.load_state_dict got an invalid state ({type(e).__name__}: {e}); pass "
                "what Normalizer.state_dict() returned"
            ) from e
        if mode not in ("per_feature", "per_channel"):
            raise ValueError(f"Normalizer state has unknown mode {mode!r}")
        self.mode = mode
        self.eps = float(state.get("eps", self.eps))
        self.dtype = np.dtype(state.get("dtype", self.dtype))
        self._moments = Moments(count, mean, m2)
        return self

    def __repr__(self) -> str:
        fitted = f"fitted on {self.count} values per statistic" if self.count else "not fitted"
        return f"Normalizer(mode={self.mode!r}, {fitted})"


def _first(batch: Any) -> NDArray[Any]:
    if isinstance(batch, (tuple, list)) and batch and not isinstance(batch[0], (int, float)):
        return np.asarray(batch[0])
    return np.asarray(batch)
