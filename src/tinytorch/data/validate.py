"""Argument checks shared by every stage; messages name the argument, the value and the fix."""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["check_bool", "check_int"]


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
