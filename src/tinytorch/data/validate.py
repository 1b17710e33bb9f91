"""Argument checks shared by every stage; messages name the argument, the value and the fix."""

from __future__ import annotations

import math
import operator

import numpy as np

__all__ = ["check_bool", "check_float", "check_int"]


def check_int(value: object, name: str, *, minimum: int = 0, hint: str = "") -> int:
    """Return ``value`` as a Python int, checking it is an integer ``>= minimum``.

    Bools are refused (``True`` is not a batch size).

    Raises:
        TypeError: not an integer.
        ValueError: smaller than ``minimum``.
    """
    kind = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f">= {minimum}"
    suffix = f"; {hint}" if hint else ""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a {kind} int, got {type(value).__name__} {value!r}{suffix}")
    v = operator.index(value)
    if v < minimum:
        raise ValueError(f"{name} must be a {kind} int, got {v}{suffix}")
    return v


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool (numpy bools accepted), else raise ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_float(
    value: object,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    hint: str = "",
) -> float:
    """Return ``value`` as a Python float, checking it is a finite real number in range.

    Python ints and floats and numpy integer and floating scalars (and 0-d arrays of them) are
    accepted alike; bools, strings, NaN and infinities are refused. Nothing is truncated.

    Args:
        value: the caller's argument.
        name: its keyword, as the caller wrote it.
        minimum, maximum: bounds (``None``: unbounded), inclusive unless ``exclusive_*``.
        hint: the fix, appended to the message.

    Raises:
        TypeError: not a real number.
        ValueError: NaN, infinite, or out of range.
    """
    suffix = f"; {hint}" if hint else ""
    lo = "" if minimum is None else f"{'>' if exclusive_minimum else '>='} {minimum:g}"
    hi = "" if maximum is None else f"{'<' if exclusive_maximum else '<='} {maximum:g}"
    wanted = "a number" + (f" {lo}" if lo else "") + (" and" if lo and hi else "") + (f" {hi}" if hi else "")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be {wanted}, got {type(value).__name__} {value!r}{suffix}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be {wanted}, got {v}{suffix}")
    too_low = minimum is not None and (v <= minimum if exclusive_minimum else v < minimum)
    too_high = maximum is not None and (v >= maximum if exclusive_maximum else v > maximum)
    if too_low or too_high:
        raise ValueError(f"{name} must be {wanted}, got {v:g}{suffix}")
    return v
