"""Argument checks of the transforms: sizes, probabilities, ranges, fill values.

Built on :mod:`tinytorch.data.validate` (numpy scalars of the right kind accepted, nothing
truncated); every message names the transform, the argument, what it must be, what it got,
and how to write it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinytorch.data.validate import check_float, check_int

__all__ = ["check_fill", "check_interval", "check_probability", "check_size", "fill_of_dtype"]


def check_size(size: object, owner: str, *, name: str = "size") -> tuple[int, int]:
    """``(h, w)`` from a positive int (a square) or a sequence of one or two positive ints.

    torchvision's convention: ``32``, ``[32]`` and ``(32, 32)`` mean the same.

    Raises:
        TypeError: not an int or a sequence of ints (a float such as 32.5 included).
        ValueError: not positive, or a sequence of another length.
    """
    label = f"{owner} {name}"
    hint = f"write {owner}({name}=32) for 32 x 32, or {owner}({name}=(h, w))"
    if isinstance(size, (int, np.integer)):
        side = check_int(size, label, minimum=1, hint=hint)
        return side, side
    if not isinstance(size, (tuple, list, np.ndarray)):
        raise TypeError(
            f"{label} must be an int or a sequence (h, w) of ints, got {type(size).__name__} {size!r}; {hint}"
        )
    items: list[Any] = list(size)
    if len(items) not in (1, 2):
        raise ValueError(
            f"{label} must be an int or a sequence (h, w) of ints, got {len(items)} values {size!r}; {hint}"
        )
    sides = [check_int(v, label, minimum=1, hint=hint) for v in items]
    return sides[0], sides[-1]


def check_probability(p: object, owner: str, *, name: str = "p") -> float:
    """A probability in ``[0, 1]`` as a Python float."""
    return check_float(p, f"{owner} {name}", minimum=0.0, maximum=1.0, hint=f"e.g. {owner}({name}=0.5)")


def check_interval(
    pair: object,
    owner: str,
    name: str,
    *,
    minimum: float,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> tuple[float, float]:
    """``(lo, hi)`` with ``lo <= hi``, both in range, as Python floats."""
    label = f"{owner} {name}"
    if not isinstance(pair, (tuple, list, np.ndarray)) or len(pair) != 2:
        raise TypeError(f"{label} must be a pair (lo, hi) of numbers, got {type(pair).__name__} {pair!r}")
    lo, hi = (
        check_float(v, label, minimum=minimum, maximum=maximum, exclusive_minimum=exclusive_minimum)
        for v in pair
    )
    if lo > hi:
        raise ValueError(
            f"{label} must be a pair (lo, hi) with lo <= hi, got {pair!r}; write ({hi:g}, {lo:g})"
        )
    return lo, hi


def check_fill(value: object, owner: str, *, name: str = "fill") -> float:
    """A fill value: a finite real number (cast to the batch's dtype where it is used)."""
    return check_float(value, f"{owner} {name}", hint=f"one value for every channel, e.g. {owner}({name}=0)")


def fill_of_dtype(value: float, dtype: np.dtype[Any], owner: str, *, name: str = "fill") -> np.generic:
    """``value`` as a scalar of the batch's ``dtype``, refused where that dtype cannot hold it.

    A fraction is truncated toward zero for integer images (torchvision's cast: 0.5 fills a
    uint8 image with 0), but a value outside the dtype's range is an error, as in torchvision,
    instead of wrapping around (300 would fill a uint8 image with 44).

    Raises:
        ValueError: ``dtype`` is an integer type and ``value`` is outside its range.
    """
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        whole = float(np.trunc(value))
        if not info.min <= whole <= info.max:
            raise ValueError(
                f"{owner} {name}={value:g} is outside the range of the {dtype} images "
                f"({info.min} to {info.max}); pass a {name} in that range (e.g. {owner}({name}=0)), "
                "or convert the images first (ToFloat)"
            )
        scalar: np.generic = dtype.type(whole)
        return scalar
    scalar = dtype.type(value)
    return scalar
