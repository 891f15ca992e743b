"""Timing several calls against each other: interleaved rounds, and an interval for a paired ratio.

A shared machine's speed drifts while a benchmark runs (another process starts, the clock steps down). Timed
one after another in blocks, two models would each meet a different stretch of that drift, and their ratio
would carry it. Timed in rounds, each round running every call once (in an order rotated from round to round,
so that no call always follows the same one), the calls of a round meet the same moment of the machine, and
the round's ratio of two calls is a paired measurement. Its median over rounds, with a distribution-free
interval from order statistics, is what a speed claim quotes: a target such as "within 1.1× of the peer" is
met when the whole interval lies at or below it, missed when the whole interval lies above it, and undecided
otherwise.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Hashable

from scipy.stats import binom

LEVEL = 0.95
MET, MISSED, UNDECIDED = "within target", "over target", "undecided"


def interleaved(calls: dict[Hashable, Callable[[], object]], reps: int, warmup: int = 3,
                sync: Callable[[], None] = lambda: None) -> dict[Hashable, list[float]]:
    """Each call's wall-clock seconds in ``reps`` rounds (round ``r``'s time is element ``r``), after ``warmup``
    untimed calls of each; every round runs every call once, starting one further along the list each round."""
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    keys = list(calls)
    for key in keys:
        for _ in range(warmup):
            calls[key]()
    sync()
    times: dict[Hashable, list[float]] = {key: [0.0] * reps for key in keys}
    for r in range(reps):
        for i in range(len(keys)):
            key = keys[(r + i) % len(keys)]
            t0 = time.perf_counter()
            calls[key]()
            sync()
            times[key][r] = time.perf_counter() - t0
    return times


def median_interval(values: list[float], level: float = LEVEL) -> tuple[float, float, float]:
    """The median of ``values`` and a distribution-free ``level`` interval for it: the order statistics
    ``x(k) ≤ x(n+1−k)`` with the largest ``k`` whose coverage ``1 − 2 P(Binomial(n, ½) ≤ k − 1)`` is at least
    ``level``; ``(−inf, inf)`` where even ``[min, max]`` covers less (fewer than 6 values at 95%)."""
    if not values:
        raise ValueError("median_interval needs at least one value")
    xs, n = sorted(values), len(values)
    med = statistics.median(xs)
    best = None
    for k in range(1, n // 2 + 1):
        if 1 - 2 * binom.cdf(k - 1, n, 0.5) >= level:
            best = k
    if best is None:
        return med, -math.inf, math.inf
    return med, xs[best - 1], xs[n - best]


def paired_ratio(num: list[float], den: list[float], level: float = LEVEL) -> tuple[float, float, float]:
    """Median and interval of the round-by-round ratios ``num[r] / den[r]`` (two calls timed in the same rounds)."""
    if len(num) != len(den):
        raise ValueError(f"paired_ratio needs times from the same rounds: {len(num)} against {len(den)}")
    return median_interval([a / b for a, b in zip(num, den)], level)


def against_target(ratio: tuple[float, float, float], target: float) -> str:
    """``within target`` when the whole interval lies at or below ``target``, ``over target`` when it lies above,
    else ``undecided``."""
    _, lo, hi = ratio  # an unbounded end may come as None (from JSON) or as an infinity
    lo, hi = -math.inf if lo is None else lo, math.inf if hi is None else hi
    return MET if hi <= target else MISSED if lo > target else UNDECIDED
