"""Robustness of attention to i.i.d. score noise, post 9593 (claims R1–R3).

With noisy scores ``s̃_i = s_i + ε_i``, softmax attention is
``õ = Σ e^{s_i} e^{ε_i} v_i / Σ e^{s_j} e^{ε_j}``. Since ``e^{ε}`` is independent of ``(s, v)``,
``E[e^ε]`` cancels between numerator and denominator and ``õ → o`` as ``n → ∞`` (R1). A first-order
(delta-method) expansion gives the size of the error:

    E‖õ − o‖² ≈ (E[e^{2ε}] / E[e^ε]² − 1) · Σ_i w_i² ‖v_i − o‖²,   w = softmax(s),

and for i.i.d. ``s ~ N(0, σ_s²)``, ``v ~ N(0, I_{d_v})``: ``Σ w_i² ≈ e^{σ_s²}/n``, ``‖v_i − o‖² ≈ d_v``,
so the RMS error is ``sqrt(ρ · e^{σ_s²} · d_v / n)`` with ``ρ = E[e^{2ε}]/E[e^ε]² − 1``: a slope of
``−1/2`` on log-log axes. ``ρ`` is infinite for Laplace noise of scale ``b ≥ 1/2`` (and Gumbel of
scale ≥ 1/2); for ``b ≥ 1`` even ``E[e^ε]`` is infinite and the cancellation argument fails (R3).

For ``a_i ∝ f(s_i + ε_i)`` with another ``f`` (R2), the limit is ``E[f(s + ε) v] / E[f(s + ε)]``,
which differs from the noise-free ``E[f(s) v] / E[f(s)]`` whenever ``f`` is not exponential: a bias
that does not shrink with ``n``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate

from ._args import count, positive

LAWS = ("gaussian", "uniform", "gumbel", "laplace")


def check_law(law: str) -> str:
    if law not in LAWS:
        raise ValueError(f"law must be one of {', '.join(map(repr, LAWS))}; got {law!r}")
    return law


def exp_moment(law: str, scale: float, m: int) -> float:
    """``E[e^{mε}]`` for zero-location noise of the given law and scale (``inf`` where it diverges).

    gaussian ``N(0, scale²)``; uniform on ``[−scale, scale]``; gumbel ``(0, scale)``;
    laplace ``(0, scale)``.
    """
    check_law(law)
    b = positive("scale", scale)
    if law == "gaussian":
        return math.exp(0.5 * (m * b) ** 2)
    if law == "uniform":
        return math.sinh(m * b) / (m * b)
    if law == "gumbel":
        return math.gamma(1 - m * b) if m * b < 1 else math.inf
    return 1.0 / (1.0 - (m * b) ** 2) if m * b < 1 else math.inf


def noise_ratio(law: str, scale: float) -> float:
    """``ρ = E[e^{2ε}] / E[e^ε]² − 1`` (``inf`` when the second moment diverges)."""
    m1, m2 = exp_moment(law, scale, 1), exp_moment(law, scale, 2)
    if math.isinf(m1) or math.isinf(m2):
        return math.inf
    return m2 / (m1 * m1) - 1.0


def predicted_error(n: int, law: str, scale: float, *, sigma_s: float = 1.0, dv: int = 1) -> float:
    """Predicted RMS ``‖õ − o‖`` for ``n`` keys (delta method, see the module docstring)."""
    n = count("n", n)
    return math.sqrt(noise_ratio(law, scale) * math.exp(sigma_s**2) * dv / n)


def sample_noise(rng: np.random.Generator, law: str, scale: float, shape) -> np.ndarray:
    check_law(law)
    if law == "gaussian":
        return scale * rng.standard_normal(shape)
    if law == "uniform":
        return rng.uniform(-scale, scale, shape)
    if law == "gumbel":
        return rng.gumbel(0.0, scale, shape)
    return rng.laplace(0.0, scale, shape)


def simulate_error(
    n: int,
    law: str,
    scale: float,
    *,
    kernel: str = "exp",
    sigma_s: float = 1.0,
    mu_s: float = 0.0,
    dv: int = 1,
    values: str = "gaussian",
    trials: int = 200,
    seed: int = 0,
) -> tuple[float, float]:
    """Simulated RMS error ``‖õ − o‖`` over ``trials`` draws of ``(s, v, ε)``; returns ``(rms, stderr)``.

    Scores ``s ~ N(μ_s, σ_s²)``, values ``v ~ N(0, I_{d_v})``; the kernel is ``exp`` (softmax),
    ``relu2`` or ``identity`` (rows normalised by their sum; ``identity`` needs ``μ_s`` well above 0).
    ``values="score"`` sets ``v_i = s_i`` (d_v = 1): values that carry the score, as in
    :func:`limit_bias`, which is what makes a biased weighting visible.
    """
    if values not in ("gaussian", "score"):
        raise ValueError(f"values must be 'gaussian' or 'score', got {values!r}")
    n, trials = count("n", n), count("trials", trials, 2)
    rng = np.random.default_rng(seed)
    errs = np.empty(trials)
    for i in range(trials):
        s = mu_s + sigma_s * rng.standard_normal(n)
        v = rng.standard_normal((n, dv)) if values == "gaussian" else s[:, None]
        e = sample_noise(rng, law, scale, n)
        errs[i] = np.linalg.norm(_attend(s + e, v, kernel) - _attend(s, v, kernel))
    sq = errs**2
    return float(math.sqrt(sq.mean())), float(sq.std(ddof=1) / math.sqrt(trials) / (2 * math.sqrt(sq.mean())))


def simulate_bias(
    n: int,
    law: str,
    scale: float,
    *,
    kernel: str,
    mu_s: float = 1.0,
    sigma_s: float = 1.0,
    trials: int = 200,
    seed: int = 0,
) -> tuple[float, float]:
    """The signed bias ``õ − o`` at finite ``n`` with values that carry the score (``v_i = s_i``, as
    :func:`limit_bias`), averaged over ``trials`` draws of ``(s, ε)``; returns ``(mean, stderr)``.

    No factor of the kernel is taken out by algebra: the noisy weights are ``f(s + ε)`` as drawn, so
    the exp kernel's cancellation has to show in the numbers (its bias shrinks with ``n``).
    """
    n, trials = count("n", n), count("trials", trials, 2)
    rng = np.random.default_rng(seed)
    d = np.empty(trials)
    for i in range(trials):
        s = mu_s + sigma_s * rng.standard_normal(n)
        e = sample_noise(rng, law, scale, n)
        d[i] = float(_attend(s + e, s[:, None], kernel)[0] - _attend(s, s[:, None], kernel)[0])
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(trials))


def _attend(s: np.ndarray, v: np.ndarray, kernel: str) -> np.ndarray:
    if kernel == "exp":
        w = np.exp(s - s.max())
    elif kernel == "relu2":
        w = np.maximum(s, 0.0) ** 2
    elif kernel == "identity":
        w = s
    else:
        raise ValueError(f"kernel must be one of 'exp', 'relu2', 'identity'; got {kernel!r}")
    return (w @ v) / w.sum()


def limit_bias(
    kernel: str,
    law: str,
    scale: float,
    *,
    mu_s: float = 1.0,
    sigma_s: float = 1.0,
    samples: int = 400_000,
    seed: int = 0,
) -> float:
    """``n → ∞`` bias of ``a ∝ f(s + ε)`` when the value carries the score, ``v_i = s_i`` (R2):
    ``E[f(s+ε) s]/E[f(s+ε)] − E[f(s) s]/E[f(s)]``, by quadrature over ``s`` and sampled ``ε``.

    Zero for ``exp`` (the cancellation); for ``identity`` zero when ``E ε = 0`` (linear) but not
    otherwise; for ``relu2`` non-zero as soon as ``ε`` has a spread.
    """
    check_law(law)
    rng = np.random.default_rng(seed)
    eps = sample_noise(rng, law, scale, samples)
    f = {"exp": np.exp, "relu2": lambda x: np.maximum(x, 0) ** 2, "identity": lambda x: x}[kernel]

    def ratio(noise):
        dens = lambda s: math.exp(-0.5 * ((s - mu_s) / sigma_s) ** 2)  # noqa: E731
        if noise is None:
            fs = lambda s: float(f(np.float64(s)))  # noqa: E731
        elif kernel == "exp":
            fs = lambda s: math.exp(s) * float(np.mean(np.exp(noise)))  # noqa: E731
        else:
            fs = lambda s: float(np.mean(f(s + noise)))  # noqa: E731
        lo, hi = mu_s - 10 * sigma_s, mu_s + 10 * sigma_s
        num, _ = integrate.quad(lambda s: fs(s) * s * dens(s), lo, hi, limit=100)
        den, _ = integrate.quad(lambda s: fs(s) * dens(s), lo, hi, limit=100)
        return num / den

    return float(ratio(eps) - ratio(None))


def loglog_slope(ns, errs) -> float:
    """Least-squares slope of ``log err`` against ``log n``."""
    x, y = np.log(np.asarray(ns, float)), np.log(np.asarray(errs, float))
    return float(np.polyfit(x, y, 1)[0])
