"""``Normalizer``: fit mean and standard deviation on training data, apply them everywhere.

The seed's fit/transform pattern, made exact and streaming: statistics are accumulated in
float64 chunk by chunk (never a float copy of the whole dataset) and merged with the
parallel-variance formula of Chan, Golub and LeVeque, so ``partial_fit`` over the batches of
a DataLoader gives the same result as ``fit`` on the full array.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinytorch.data.transforms.base import Transform, batch_layout, resolve_batched
from tinytorch.data.transforms.normalize import affine, affine_coefficients
from tinytorch.data.validate import check_float, check_int

__all__ = ["STATE_FORMAT", "STATE_VERSION", "Moments", "Normalizer"]

Mode = Literal["per_feature", "per_channel"]
CHUNK_BYTES = 32 << 20
STATE_FORMAT = "tinytorch.Normalizer"
STATE_VERSION = 1
"""Version of :meth:`Normalizer.state_dict`'s layout; a state of another version is refused."""


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
        eps: positive; features whose standard deviation is at most ``eps`` are only centred
            (divided by 1), so a constant feature maps to 0 instead of exploding.
        dtype: output dtype of :meth:`transform`, a floating dtype (float32 by default).

    Attributes (after fitting):
        mean, std: float64 arrays; ``std`` is the population standard deviation (ddof=0).
        count: values per statistic seen so far.

    Usable as a dataset ``transform=`` (one sample) or a loader ``batch_transform=`` (a batch,
    or an ``(images, labels)`` batch whose first item is normalized). One sample has the
    fitted shape (per channel: ``(C, H, W)``), a batch one more leading axis; which one is
    expected follows the transforms' rule (``transforms/base.py``: ``batched=``, else the
    loader's batch context, else the rank).

    Raises:
        ValueError: a mode other than the two above, or ``eps <= 0``; fitting on no values,
            on NaN or infinite values (naming how many and where the first is), or on data
            whose statistics have another shape than earlier data.
        TypeError: ``eps`` not a real number, ``dtype`` not floating, or data that are not
            real numbers.
    """

    def __init__(self, mode: Mode = "per_feature", eps: float = 1e-8, dtype: Any = np.float32) -> None:
        if mode not in ("per_feature", "per_channel"):
            raise ValueError(
                f"Normalizer mode must be 'per_feature' or 'per_channel', got {mode!r}; use "
                "mode='per_channel' for images (N, C, H, W), 'per_feature' for other data"
            )
        self.mode: Mode = mode
        self.eps = check_float(
            eps, "Normalizer eps", minimum=0.0, exclusive_minimum=True, hint="e.g. eps=1e-8"
        )
        self.dtype = _float_dtype(dtype)
        self._moments: Moments | None = None

    # ---- fitting ----------------------------------------------------------------------------

    def _axes(self, x: NDArray[Any]) -> tuple[int, ...]:
        if self.mode == "per_feature":
            if x.ndim < 1:
                raise ValueError("Normalizer.fit needs data with a sample axis, got a scalar")
            return (0,)
        if x.ndim != 4:
            hint = "; for single-channel images add the channel axis: x[:, None]" if x.ndim == 3 else ""
            raise ValueError(
                f"Normalizer(mode='per_channel') fits images (N, C, H, W), got shape {x.shape}"
                f"{hint}; use mode='per_feature' for other data"
            )
        return (0, 2, 3)

    def _moments_of(self, batch: Any, action: str) -> Moments:
        """Moments of one batch, chunk by chunk (no float copy of the whole batch)."""
        x = _first(batch)
        if x.dtype.kind not in "biuf":
            raise TypeError(
                f"Normalizer.{action} fits real numbers, got an array of dtype {x.dtype}; convert "
                "it first (e.g. x.astype(numpy.float32))"
            )
        axes = self._axes(x)
        if x.size == 0:
            raise ValueError(
                f"Normalizer.{action} got no values (shape {x.shape}); pass at least one sample "
                "with at least one feature"
            )
        _check_finite(x, action)
        rows = max(1, CHUNK_BYTES // max(1, x[:1].size * 8))
        merged: Moments | None = None
        for start in range(0, len(x), rows):
            part = Moments.of(x[start : start + rows], axes)
            merged = part if merged is None else merged.merge(part)
        assert merged is not None
        return merged

    def _merge(self, earlier: Moments | None, part: Moments, shape: tuple[int, ...]) -> Moments:
        if earlier is None:
            return part
        if part.mean.shape != earlier.mean.shape:
            raise ValueError(
                f"Normalizer.partial_fit got data with statistics of shape {part.mean.shape} "
                f"(input {shape}), but earlier data gave {earlier.mean.shape}; pass "
                "samples of one shape, or call fit() to start over"
            )
        return earlier.merge(part)

    def partial_fit(self, batch: ArrayLike) -> Normalizer:
        """Add a batch of samples to the statistics (chunked; no float copy of the whole batch).

        A ``(data, labels, ...)`` tuple or list whose first item is an array fits on that
        item, so DataLoader batches can be passed as they are (a list of samples is not such
        a batch: stack it first). On error the statistics are left as they were.
        """
        self._moments = self._merge(
            self._moments, self._moments_of(batch, "partial_fit"), np.shape(_first(batch))
        )
        return self

    def fit(self, data: ArrayLike | Iterable[Any]) -> Normalizer:
        """Fit on ``data``: an array(-like) ``(N, ...)``, or an iterable of batches (a DataLoader).

        Forgets earlier statistics; on error they are left as they were. Returns ``self``.
        """
        array_like = isinstance(data, (np.ndarray, list, tuple)) or hasattr(data, "__array__")
        if array_like or not isinstance(data, Iterable):
            self._moments = self._moments_of(data, "fit")
            return self
        moments: Moments | None = None
        for index, batch in enumerate(data):
            try:
                part = self._moments_of(batch, "fit")
            except (TypeError, ValueError) as e:
                raise type(e)(f"{e} (in batch {index} of the iterable)") from e
            moments = self._merge(moments, part, np.shape(_first(batch)))
        if moments is None:
            raise ValueError("Normalizer.fit got an iterable with no batches")
        self._moments = moments
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

    def sample_rank(self) -> int:
        """Rank of one sample: 3 per channel (``(C, H, W)``), the fitted shape's per feature."""
        if self.mode == "per_channel":
            return 3
        return self._fitted("transform").mean.ndim

    def _broadcast(self, stat: NDArray[np.float64], batch: NDArray[Any], action: str) -> NDArray[Any]:
        """``stat`` shaped to broadcast against ``batch`` ``(N, *sample_shape)``."""
        if self.mode == "per_channel":
            if batch.ndim != 4 or batch.shape[1] != len(stat):
                raise ValueError(
                    f"Normalizer.{action}: fitted on images with {len(stat)} channels, got images "
                    f"of shape {batch.shape[1:]}; expected (C, H, W) with C = {len(stat)}"
                )
            return stat.reshape(-1, 1, 1)
        if batch.shape[1:] != stat.shape:
            raise ValueError(
                f"Normalizer.{action}: fitted on samples of shape {stat.shape}, got samples of "
                f"shape {batch.shape[1:]}; expected one sample {stat.shape} or a batch "
                f"(N, *{stat.shape})"
            )
        return stat

    def _as_batch(self, data: ArrayLike, batched: bool | None, action: str) -> tuple[NDArray[Any], bool]:
        """``data`` as a batch, and whether it was one sample (per the transforms' rule)."""
        x = np.asarray(data)
        layout = batch_layout(x, self.sample_rank(), resolve_batched(batched), f"Normalizer.{action}")
        return (x[None], True) if layout == "sample" else (x, False)

    def transform(self, data: ArrayLike, *, batched: bool | None = None) -> NDArray[Any]:
        """``(x - mean) / std`` in :attr:`dtype`, for one sample or a batch.

        Computed as ``Normalize`` computes it (``x * (1 / std) + (-mean / std)``, see
        ``transforms/normalize.py``): per channel, the output is byte-identical to
        ``Normalize(mean, std)`` with the fitted statistics.
        """
        batch, single = self._as_batch(data, batched, "transform")
        out = self.apply(batch, None)
        return out[0] if single else out

    def inverse_transform(self, data: ArrayLike, *, batched: bool | None = None) -> NDArray[np.float64]:
        """``x * std + mean`` (float64): undoes :meth:`transform` up to float rounding."""
        batch, single = self._as_batch(data, batched, "inverse_transform")
        x = batch.astype(np.float64)
        scale = self._broadcast(self._scale(), x, "inverse_transform")
        out: NDArray[np.float64] = x * scale + self._broadcast(self.mean, x, "inverse_transform")
        return out[0] if single else out

    def fit_transform(self, data: ArrayLike) -> NDArray[Any]:
        """``fit(data)`` then ``transform(data)``."""
        return self.fit(data).transform(_first(data))

    def apply(self, batch: NDArray[Any], params: Any) -> NDArray[Any]:
        scale, shift = affine_coefficients(self.mean, self._scale())
        return affine(
            batch,
            self._broadcast(scale, batch, "transform").astype(self.dtype),
            self._broadcast(shift, batch, "transform").astype(self.dtype),
            self.dtype,
        )

    # ---- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The fitted state as plain JSON-serializable values (for checkpoints).

        Keys: ``format`` (``"tinytorch.Normalizer"``), ``version`` (:data:`STATE_VERSION`),
        the configuration ``mode``, ``eps``, ``dtype`` (a numpy dtype name), and the
        statistics ``count``, ``shape``, ``mean`` and ``m2`` (float64 values, flattened in C
        order; ``m2`` is the sum of squared deviations, so fitting can go on after loading).
        Floats survive ``json`` exactly.

        Raises:
            ValueError: not fitted.
        """
        m = self._fitted("state_dict")
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "mode": self.mode,
            "eps": self.eps,
            "dtype": self.dtype.name,
            "count": m.count,
            "shape": list(m.mean.shape),
            "mean": m.mean.ravel().tolist(),
            "m2": m.m2.ravel().tolist(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> Normalizer:
        """Restore the statistics of :meth:`state_dict` into this Normalizer. Returns ``self``.

        The state must come from a Normalizer configured the same way (``mode``, ``eps``,
        ``dtype``); :meth:`from_state_dict` creates one that is.

        Raises:
            TypeError: ``state`` is not a mapping.
            ValueError: a field is missing, of another format, version or configuration, or
                inconsistent (the message names the field); nothing is changed then.
        """
        config, moments = _parse_state(state)
        mine = {"mode": self.mode, "eps": self.eps, "dtype": self.dtype.name}
        for field, value in config.items():
            if value != mine[field]:
                raise ValueError(
                    f"Normalizer.load_state_dict: field {field!r} of the state is {value!r}, but this "
                    f"Normalizer has {field}={mine[field]!r}; create it as Normalizer(mode="
                    f"{config['mode']!r}, eps={config['eps']!r}, dtype={config['dtype']!r}), or use "
                    "Normalizer.from_state_dict(state)"
                )
        self._moments = moments
        return self

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Normalizer:
        """A Normalizer configured and fitted as the one whose :meth:`state_dict` ``state`` is."""
        config, moments = _parse_state(state)
        normalizer = cls(mode=config["mode"], eps=config["eps"], dtype=config["dtype"])
        normalizer._moments = moments
        return normalizer

    def __repr__(self) -> str:
        fitted = f"fitted on {self.count} values per statistic" if self.count else "not fitted"
        return f"Normalizer(mode={self.mode!r}, {fitted})"


def _parse_state(state: object) -> tuple[dict[str, Any], Moments]:
    """Configuration and statistics of a :meth:`Normalizer.state_dict`, every field checked."""
    if not isinstance(state, Mapping):
        raise TypeError(
            f"Normalizer.load_state_dict takes the dict that Normalizer.state_dict() returned, got "
            f"{type(state).__name__}"
        )

    def field(name: str) -> Any:
        if name not in state:
            raise ValueError(
                f"Normalizer state has no field {name!r} (fields: {sorted(state)}); pass what "
                "Normalizer.state_dict() returned"
            )
        return state[name]

    def bad(name: str, expected: str) -> ValueError:
        return ValueError(f"Normalizer state field {name!r} must be {expected}, got {state[name]!r}")

    if field("format") != STATE_FORMAT:
        raise bad("format", f"{STATE_FORMAT!r} (this is not a Normalizer's state)")
    version = field("version")
    if isinstance(version, bool) or version != STATE_VERSION:
        raise bad(
            "version", f"{STATE_VERSION} (a state of another version of tinytorch: re-fit and save it again)"
        )
    mode = field("mode")
    if mode not in ("per_feature", "per_channel"):
        raise bad("mode", "'per_feature' or 'per_channel'")
    try:
        eps = check_float(field("eps"), "'eps'", minimum=0.0, exclusive_minimum=True)
        count = check_int(field("count"), "'count'", minimum=1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Normalizer state field {e}") from e
    try:
        if not isinstance(field("dtype"), str):  # np.dtype(None) would be float64, silently
            raise TypeError(field("dtype"))
        dtype = _float_dtype(field("dtype")).name
    except TypeError as e:
        raise bad("dtype", "the name of a floating numpy dtype, e.g. 'float32'") from e
    shape = field("shape")
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
    ):
        raise bad("shape", "a list of positive ints (fitting never gives a statistic of no values)")
    if mode == "per_channel" and len(shape) != 1:
        raise bad("shape", "[C], one statistic per channel, for mode 'per_channel'")
    size = math.prod(shape)  # exact: numpy's product of a huge shape wraps around
    stats = {}
    for name in ("mean", "m2"):
        raw = field(name)
        try:
            values = np.array(raw, dtype=np.float64)  # a copy: later changes to raw do not leak in
        except (TypeError, ValueError) as e:
            raise bad(name, f"a list of {size} numbers") from e
        if values.shape != (size,) or not np.isfinite(values).all():
            raise bad(name, f"a list of {size} finite numbers (shape {list(shape)})")
        stats[name] = values.reshape(shape)
    if (stats["m2"] < 0).any():
        raise bad("m2", "sums of squared deviations, none negative")
    return {"mode": mode, "eps": eps, "dtype": dtype}, Moments(count, stats["mean"], stats["m2"])


def _first(batch: Any) -> NDArray[Any]:
    """The data of ``batch``: the first item of a ``(data, labels, ...)`` tuple or list whose
    first item is an array (a DataLoader batch), else ``batch`` itself as an array."""
    if isinstance(batch, (tuple, list)) and batch and _is_array(batch[0]):
        return np.asarray(batch[0])
    return np.asarray(batch)


def _is_array(x: object) -> bool:
    return isinstance(x, np.ndarray) or (hasattr(x, "__array__") and not isinstance(x, (int, float)))


def _check_finite(x: NDArray[Any], action: str) -> None:
    """Refuse NaN and infinities, naming how many there are and where the first one is."""
    if x.dtype.kind != "f":
        return
    rows = max(1, CHUNK_BYTES // max(1, x[:1].size * 8))
    for start in range(0, len(x), rows):
        part = x[start : start + rows]
        if np.isfinite(part).all():
            continue
        count = int(np.count_nonzero(~np.isfinite(x)))
        first = np.argwhere(~np.isfinite(part))[0]
        first[0] += start
        where = tuple(int(i) for i in first)
        raise ValueError(
            f"Normalizer.{action} got {count} NaN or infinite value(s) in data of shape {x.shape}, "
            f"the first at index {where} ({x[where]}); statistics of them would be NaN. Remove "
            "or impute them first"
        )


def _float_dtype(dtype: Any) -> np.dtype[Any]:
    try:
        resolved: np.dtype[Any] = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(
            f"Normalizer dtype must be a floating dtype such as numpy.float32, got {dtype!r}"
        ) from e
    if resolved.kind != "f":
        raise TypeError(
            f"Normalizer dtype must be a floating dtype such as numpy.float32, got {resolved}; "
            "standardized values are fractions"
        )
    return resolved
