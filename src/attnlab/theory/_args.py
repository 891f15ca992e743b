"""Argument checks for the theory functions: one-line errors that name the argument."""

from __future__ import annotations

import math


def positive(name: str, x: float) -> float:
    x = float(x)
    if not (x > 0 and math.isfinite(x)):
        raise ValueError(f"{name} must be a positive finite number, got {x}")
    return x


def finite(name: str, x: float) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x}")
    return x


def count(name: str, n: int, minimum: int = 1) -> int:
    if isinstance(n, bool) or int(n) != n or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n}")
    return int(n)


def in_unit_interval(name: str, x: float) -> float:
    x = float(x)
    if not (0 < x <= 1):
        raise ValueError(f"{name} must lie in (0, 1], got {x}")
    return x
