"""The entropy of softmax attention rows, post 9593 (claims I1–I4).

Scores ``s_i = cos θ_i / τ`` lie in ``[−1/τ, 1/τ]``. The entropy ``H`` of ``p ∝ e^{s}`` is at most
``log n``; its minimum over the cube is reached at a vertex (checked by :func:`cube_minimum`), with
a fraction ``t`` of the scores at ``−a`` and ``1 − t`` at ``+a`` (``a = 1/τ``). Then, as ``n → ∞``,

    gap(t) = log n − H = a·N/D − log D,   D = (1−t)e^a + t e^{−a},   N = (1−t)e^a − t e^{−a}.

Setting ``d gap/dt = 0`` gives ``D = a / sinh a``, so ``t* = (e^a − a/sinh a) / (2 sinh a)``; for
``a = 1`` this is the post's corrected ``(e⁴ − 3e²)/(1 − 2e² + e⁴) = 0.7944868…`` and the gap
``0.4744746…`` (the first guess ``t = 1/2`` gives ``tanh 1 − log cosh 1 = 0.3278…``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from ._args import count, positive


def _gap_at(t: float, a: float) -> float:
    """``log n − H`` (n → ∞) with a fraction ``t`` of the scores at ``−a``, the rest at ``+a``."""
    # divide N and D by e^a: stable for large a
    w = math.exp(-2 * a)
    d = (1 - t) + t * w
    nn = (1 - t) - t * w
    return a * nn / d - (a + math.log(d))


def t_star(tau: float) -> float:
    """The minimising fraction of scores at ``−1/τ`` (closed form, n → ∞)."""
    a = 1.0 / positive("tau", tau)
    # (e^a − a/sinh a)/(2 sinh a) = (1 − 2a e^{−a}/(e^{a} − e^{−a}))/(1 − e^{−2a}), stable for large a
    e2 = -math.expm1(-2 * a)  # 1 − e^{−2a}
    return (1 - 2 * a * math.exp(-2 * a) / e2) / e2 if a > 1e-4 else 0.5 + a / 6


def entropy_gap(tau: float) -> float:
    """``log n − H_min`` as ``n → ∞``, closed form: ``a − t*(1 − e^{−2a}) − log a + log sinh a``.

    (From ``gap = a·N/D − log D`` at the optimum ``D = a/sinh a``; written so that it stays exact
    for small τ, where ``t*`` rounds to 1 in floating point.)
    """
    a = 1.0 / positive("tau", tau)
    e2 = -math.expm1(-2 * a)
    log_sinh = a + math.log(e2 / 2)
    return a - t_star(tau) * e2 - math.log(a) + log_sinh


def entropy_gap_numeric(tau: float) -> float:
    """The same gap by direct numerical maximisation over ``t`` (the independent check).

    Reliable for moderate τ (about 0.1 to 1e3): for smaller τ the optimum ``t*`` sits within
    ``e^{−2/τ}`` of 1, beyond what a bounded scalar search resolves.
    """
    a = 1.0 / positive("tau", tau)
    res = optimize.minimize_scalar(
        lambda t: -_gap_at(t, a), bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-12}
    )
    return float(-res.fun)


def half_half_gap(tau: float = 1.0) -> float:
    """The gap with half of the scores at each end (the post's first guess)."""
    return _gap_at(0.5, 1.0 / positive("tau", tau))


def entropy_of_scores(s: np.ndarray) -> float:
    """Entropy (nats) of ``softmax(s)``, stable for any scale."""
    s = np.asarray(s, float)
    lse = special.logsumexp(s)
    p = np.exp(s - lse)
    return float(lse - p @ s)


def entropy_floor_exact(tau: float, n: int) -> tuple[float, int]:
    """Exact minimum entropy over vertices with ``k`` scores at ``−1/τ`` (``0 ≤ k < n``) for a finite
    ``n``; returns ``(H_min, k*)``."""
    a, n = 1.0 / positive("tau", tau), count("n", n, 2)  # one score has no distribution to spread
    k = np.arange(n)  # k = n is the uniform row again
    # H_k = log Z − Σ p s with Z = (n−k)e^a + k e^{−a}, all divided by e^a for stability
    w = math.exp(-2 * a)
    z = (n - k) + k * w
    H = np.log(z) + a - a * ((n - k) - k * w) / z
    i = int(np.argmin(H))
    return float(H[i]), int(k[i])


def entropy_floor(tau: float, n: int | None = None) -> dict[str, float]:
    """``{"gap", "t_star"}`` (n → ∞) and, with ``n``, ``{"floor", "floor_exact"}``."""
    out = {"gap": entropy_gap(tau), "t_star": t_star(tau)}
    if n is not None:
        n = count("n", n, 2)
        out["floor"] = math.log(n) - out["gap"]
        out["floor_exact"] = entropy_floor_exact(tau, n)[0]
    return out


def tau_for_floor(floor: float, n: int) -> float:
    """The temperature ``τ`` whose exact entropy floor at length ``n`` equals ``floor``."""
    n = count("n", n, 2)
    floor = float(floor)
    if not (0 < floor < math.log(n)):
        raise ValueError(f"floor must lie in (0, log n) = (0, {math.log(n):.6g}), got {floor}")
    f = lambda lt: entropy_floor_exact(math.exp(lt), n)[0] - floor  # noqa: E731  increasing in log τ
    lo, hi = -12.0, 12.0
    if f(hi) < 0:
        raise ValueError(f"floor {floor} is too close to log n for any τ ≤ e^12")
    return float(math.exp(optimize.brentq(f, lo, hi, xtol=1e-13, rtol=1e-13)))


def cube_minimum(n: int, tau: float = 1.0, starts: int = 64, seed: int = 0) -> dict[str, float]:
    """Minimise ``H(softmax(s/τ))`` over ``s ∈ [−1, 1]ⁿ`` with L-BFGS-B from many random starts.

    Returns the best entropy, its distance from the nearest vertex (max over coordinates of
    ``1 − |s_i|``) and the exact vertex floor, so that "the minimiser sits on the vertices" is a
    measured statement.
    """
    n, tau = count("n", n, 2), positive("tau", tau)
    rng = np.random.default_rng(seed)

    def fun(s):
        z = s / tau
        lse = special.logsumexp(z)
        p = np.exp(z - lse)
        H = lse - p @ z
        grad = -p * (z - p @ z) / tau  # dH/ds
        return H, grad

    best = None
    for _ in range(starts):
        res = optimize.minimize(
            fun,
            rng.uniform(-1, 1, n),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-1, 1)] * n,
            options={"ftol": 1e-15, "gtol": 1e-12},
        )
        if best is None or res.fun < best.fun:
            best = res
    return {
        "H_min": float(best.fun),
        "vertex_distance": float(np.max(1 - np.abs(best.x))),
        "floor_exact": entropy_floor_exact(tau, n)[0],
    }


def gaussian_entropy_limit(n: int, sigma: float) -> float:
    """Large-n expected entropy of softmax over ``s_i ~ N(0, σ²)``: ``log n − σ²/2`` (I3)."""
    return math.log(count("n", n)) - 0.5 * positive("sigma", sigma) ** 2


def gaussian_entropy_mc(n: int, sigma: float, trials: int = 200, seed: int = 0) -> tuple[float, float]:
    """Monte Carlo ``E[H]`` for ``s_i ~ N(0, σ²)``; returns ``(mean, stderr)``."""
    n, sigma, trials = count("n", n), positive("sigma", sigma), count("trials", trials, 2)
    rng = np.random.default_rng(seed)
    s = sigma * rng.standard_normal((trials, n))
    lse = special.logsumexp(s, axis=1, keepdims=True)
    p = np.exp(s - lse)
    H = lse[:, 0] - (p * s).sum(1)
    return float(H.mean()), float(H.std(ddof=1) / math.sqrt(trials))


def entropy_vs_dim(
    n: int, dims: list[int], scaled: bool, trials: int = 100, seed: int = 0
) -> list[tuple[float, float]]:
    """``E[H]`` of softmax over ``q·k_i`` (``q, k_i ~ N(0, I_d)``), with or without the ``1/√d`` scale (I4)."""
    rng = np.random.default_rng(seed)
    out = []
    for d in dims:
        q = rng.standard_normal((trials, 1, d))
        k = rng.standard_normal((trials, n, d))
        s = (q * k).sum(-1) / (math.sqrt(d) if scaled else 1.0)
        lse = special.logsumexp(s, axis=1, keepdims=True)
        p = np.exp(s - lse)
        H = lse[:, 0] - (p * s).sum(1)
        out.append((float(H.mean()), float(H.std(ddof=1) / math.sqrt(trials))))
    return out
