"""The ℓ1/ℓ2 sparsity of attention rows, post 9889 ("can attention concentrate?"), claims C1–C6.

``S(x) = E|x| / sqrt(E x²)`` lies in ``(0, 1]``; smaller is sparser (C1). For one query ``q`` and
keys ``k ~ N(μ, σ² I)`` the score is ``q·k = β + γ ε`` with ``β = q·μ``, ``γ = σ‖q‖``, ``ε ~ N(0, 1)``,
so ``S(f(q·k))`` depends on ``β, γ`` only. Each quantity is given three ways: the closed form,
numerical integration of the defining expectation, and Monte Carlo over sampled q and k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate, special

from ._args import count, finite, in_unit_interval, positive

KERNELS = ("exp", "relu2", "identity")
_SQRT2PI = math.sqrt(2 * math.pi)


# ---- closed forms -------------------------------------------------------------------------------
def sparsity_exp(gamma: float) -> float:
    """``f = exp``: ``S = exp(−γ²/2)`` (post 9889, eq. 5); independent of β. Never overflows."""
    positive("gamma", gamma)
    return math.exp(-0.5 * gamma * gamma)


def sparsity_identity(beta: float, gamma: float) -> float:
    """``f = identity``: ``S = (√(2/π) γ e^{−β²/2γ²} + β erf(β/√2γ)) / √(β² + γ²)`` (post 9889).

    The numerator is ``E|β + γε|``, even in β; we evaluate it at ``|β|`` where every term is
    non-negative, which avoids the cancellation of the two terms for very negative β.
    """
    beta, gamma = abs(finite("beta", beta)), positive("gamma", gamma)
    z = beta / gamma
    num = gamma * (math.sqrt(2 / math.pi) * math.exp(-0.5 * z * z) + z * math.erf(z / math.sqrt(2)))
    return num / math.hypot(beta, gamma)


def _relu_moment_ratio(z: float, m: int) -> float:
    """``B_m(z) = E[(z + ε)_+^m] / φ(z)`` for ``ε ~ N(0, 1)``, computed without cancellation.

    For ``z ≥ −20`` via the Mills ratio ``R = Φ(z)/φ(z)`` (``erfcx``); below, the closed form
    subtracts nearly equal numbers (its relative error grows like ``z⁴·1e−16``), so we switch to
    the asymptotic series ``B_m = Σ_k (−1/2)^k (m+2k)! / (k! s^{m+2k+1})`` with ``s = −z``.
    """
    if z >= -20:
        R = math.sqrt(math.pi / 2) * special.erfcx(-z / math.sqrt(2))
        if m == 2:
            return (z * z + 1) * R + z
        if m == 4:
            return (z**4 + 6 * z * z + 3) * R + z**3 + 5 * z
        raise ValueError(m)
    s, total = -z, 0.0
    for k in range(12):
        term = (-0.5) ** k * math.factorial(m + 2 * k) / (math.factorial(k) * s ** (m + 2 * k + 1))
        total += term
    return total


def sparsity_relu2(beta: float, gamma: float) -> float:
    """``f = relu²``: the post's closed form (eq. 6, by Mathematica), here as
    ``S = E[(z+ε)_+²] / sqrt(E[(z+ε)_+⁴])`` with ``z = β/γ``, i.e.
    ``S = B₂(z) / sqrt(B₄(z)) · sqrt(φ(z))`` with the moment ratios of :func:`_relu_moment_ratio`.

    Stable for any ``z``: for ``z ≥ 0`` the moments directly (all terms positive); for very
    negative ``β/γ`` an asymptotic series instead of the erf expression, which cancels; and
    ``φ(z)`` is taken in logs so that ``S`` underflows only when it is below 1e−300.
    """
    beta, gamma = finite("beta", beta), positive("gamma", gamma)
    z = beta / gamma
    if z >= 0:  # no cancellation here; the Mills ratio would overflow for large z
        Phi, phi = special.ndtr(z), math.exp(-0.5 * z * z) / _SQRT2PI
        e2 = (z * z + 1) * Phi + z * phi
        e4 = (z**4 + 6 * z * z + 3) * Phi + (z**3 + 5 * z) * phi
        return e2 / math.sqrt(e4)
    b2, b4 = _relu_moment_ratio(z, 2), _relu_moment_ratio(z, 4)
    log_phi = -0.5 * z * z - math.log(_SQRT2PI)
    return math.exp(math.log(b2) - 0.5 * math.log(b4) + 0.5 * log_phi)


def sparsity_relu2_post(beta: float, gamma: float) -> float:
    """The post's eq. (6) exactly as printed (erf form). Loses precision for ``β/γ ≲ −8``."""
    b, g = beta, gamma
    e = math.exp(-(b * b) / (2 * g * g))
    erf1 = math.erf(b / (math.sqrt(2) * g)) + 1
    num = e * (math.sqrt(2) * b * g + math.sqrt(math.pi) / e * (b * b + g * g) * erf1)
    den = math.pi**0.25 * math.sqrt(
        2 * math.sqrt(2) * b * g * e * (b * b + 5 * g * g)
        + 2 * math.sqrt(math.pi) * (b**4 + 6 * b * b * g * g + 3 * g**4) * erf1
    )
    return num / den


def sparsity_formula(kernel: str, beta: float, gamma: float) -> float:
    """Closed-form ``S`` for ``kernel`` in ``exp``, ``relu2``, ``identity``."""
    if kernel == "exp":
        finite("beta", beta)
        return sparsity_exp(gamma)
    if kernel == "relu2":
        return sparsity_relu2(beta, gamma)
    if kernel == "identity":
        return sparsity_identity(beta, gamma)
    raise ValueError(f"kernel must be one of {', '.join(map(repr, KERNELS))}; got {kernel!r}")


# ---- numerical integration --------------------------------------------------------------------
def _log_gauss_moment(logf, center: float, width: float = 40.0) -> float:
    """``log ∫ exp(logf(ε)) φ(ε) dε`` by quadrature around ``center`` (where the integrand peaks),
    shifted by its value there so that nothing overflows."""
    shift = logf(center) - 0.5 * center * center
    val, _ = integrate.quad(
        lambda e: math.exp(logf(e) - 0.5 * e * e - shift),
        center - width,
        center + width,
        points=[center],
        limit=400,
        epsabs=0,
        epsrel=1e-11,
    )
    return math.log(val) + shift - math.log(_SQRT2PI)


def sparsity_quadrature(kernel: str, beta: float, gamma: float) -> float:
    """``S`` from the defining expectations, integrated numerically over ``ε ~ N(0, 1)``."""
    beta, gamma = finite("beta", beta), positive("gamma", gamma)
    if kernel == "exp":
        # E e^{mγε}: integrand peaks at ε = mγ
        l1 = _log_gauss_moment(lambda e: gamma * e, gamma)
        l2 = _log_gauss_moment(lambda e: 2 * gamma * e, 2 * gamma)
        return math.exp(l1 - 0.5 * l2)
    z = beta / gamma
    if kernel == "identity":
        kink = [-z] if abs(z) < 40 else None  # |z + ε| has a kink at ε = −z
        m1, _ = integrate.quad(
            lambda e: abs(z + e) * math.exp(-0.5 * e * e), -40, 40, points=kink, epsabs=0, epsrel=1e-11, limit=400
        )
        m2, _ = integrate.quad(
            lambda e: (z + e) ** 2 * math.exp(-0.5 * e * e), -40, 40, epsabs=0, epsrel=1e-11, limit=400
        )
        return m1 / math.sqrt(m2 * _SQRT2PI)
    if kernel == "relu2":
        # E[(z+ε)_+^m] = φ(z) ∫_0^∞ u^m e^{zu − u²/2} du; the integral has a positive integrand
        def log_moment(m):
            peak = max((z + math.sqrt(z * z + 4 * m)) / 2, 1e-3)  # argmax of u^m e^{zu − u²/2}
            c = m * math.log(peak) + z * peak - 0.5 * peak * peak  # shift: no overflow for large z
            val, _ = integrate.quad(
                lambda u: math.exp(m * math.log(u) + z * u - 0.5 * u * u - c) if u > 0 else 0.0,
                0,
                peak + 60,
                points=[peak],
                epsabs=0,
                epsrel=1e-11,
                limit=400,
            )
            return math.log(val) + c

        log_phi = -0.5 * z * z - math.log(_SQRT2PI)
        return math.exp(log_moment(2) - 0.5 * log_moment(4) + 0.5 * log_phi)
    raise ValueError(f"kernel must be one of {', '.join(map(repr, KERNELS))}; got {kernel!r}")


# ---- Monte Carlo over sampled q and k ----------------------------------------------------------
@dataclass(frozen=True)
class MonteCarlo:
    value: float
    stderr: float


def _sparsity_of_samples(a: np.ndarray, log_domain: bool) -> float:
    if log_domain:  # a holds log f; S = E e^a / sqrt(E e^{2a}) without overflow
        m = a.max()
        return float(np.mean(np.exp(a - m)) / math.sqrt(np.mean(np.exp(2 * (a - m)))))
    m2 = float(np.mean(a * a))
    return float(np.mean(np.abs(a)) / math.sqrt(m2)) if m2 > 0 else float("nan")


def sparsity_monte_carlo(
    kernel: str,
    beta: float,
    gamma: float,
    *,
    samples: int = 200_000,
    dim: int = 16,
    sigma: float = 1.0,
    batches: int = 20,
    seed: int = 0,
) -> MonteCarlo:
    """``S`` from keys sampled as ``k ~ N(μ, σ² I_dim)`` and a query with ``q·μ = β``, ``σ‖q‖ = γ``.

    The standard error is the spread of ``batches`` independent batch estimates. For ``exp`` with
    large γ the estimate is dominated by rare keys (the distribution ``e^{γε}`` is heavy): the
    stderr then understates the error, which is the nature of the quantity, not a bug. Where a
    batch holds no non-zero score (``relu2`` with ``P(β + γε > 0) ≲ 1/samples``) the batches are
    pooled and the stderr is reported as ``inf``: Monte Carlo cannot resolve such rare events.
    """
    check_kernel(kernel)
    beta, gamma, sigma = finite("beta", beta), positive("gamma", gamma), positive("sigma", sigma)
    count("samples", samples, batches)
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(dim)
    u /= np.linalg.norm(u)
    q = u * gamma / sigma
    mu = u * beta / (q @ u) if beta else np.zeros(dim)  # then q·μ = β
    per = samples // batches
    ests = []
    for _ in range(batches):
        k = mu + sigma * rng.standard_normal((per, dim))
        s = k @ q
        if kernel == "exp":
            ests.append(_sparsity_of_samples(s, True))
        else:
            ests.append(_sparsity_of_samples(np.maximum(s, 0) ** 2 if kernel == "relu2" else s, False))
    ests = np.asarray(ests)
    if np.isnan(ests).any():
        pooled = np.nanmean(ests) if not np.isnan(ests).all() else float("nan")
        return MonteCarlo(float(pooled), float("inf"))
    return MonteCarlo(float(ests.mean()), float(ests.std(ddof=1) / math.sqrt(batches)))


def check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(map(repr, KERNELS))}; got {kernel!r}")
    return kernel


def sparsity_three_ways(kernel: str, beta: float, gamma: float, **mc) -> dict[str, float]:
    """``{"formula", "quadrature", "monte_carlo", "monte_carlo_stderr"}`` for one (kernel, β, γ)."""
    check_kernel(kernel)
    res = sparsity_monte_carlo(kernel, beta, gamma, **mc)
    return {
        "formula": sparsity_formula(kernel, beta, gamma),
        "quadrature": sparsity_quadrature(kernel, beta, gamma),
        "monte_carlo": res.value,
        "monte_carlo_stderr": res.stderr,
    }


# ---- linear RNN with decay (C6) ----------------------------------------------------------------
def decay_sparsity(lam: float, n: int) -> float:
    """``S`` of ``a = (λ^{n−1}, …, λ, 1)``: ``sqrt((1 − λⁿ)/(n(1 − λ)) · (1 + λ)/(1 + λⁿ))`` (C6).

    ``λ = 1`` is the limit ``S = 1`` (uniform); near 1 the ratio ``(1 − λⁿ)/(1 − λ)`` is computed
    with ``expm1``/``log1p`` to avoid the 0/0 cancellation.
    """
    lam, n = in_unit_interval("lam", lam), count("n", n)
    if lam == 1.0:
        return 1.0
    log_lam = math.log(lam)
    lam_n = math.exp(n * log_lam)
    geo = math.expm1(n * log_lam) / math.expm1(log_lam)  # (1 − λⁿ)/(1 − λ), both negative terms
    return math.sqrt(geo / n * (1 + lam) / (1 + lam_n))


def decay_sparsity_exact(lam: float, n: int) -> float:
    """The same ``S`` summed directly over the ``n`` weights (the independent check)."""
    lam, n = in_unit_interval("lam", lam), count("n", n)
    a = np.power(lam, np.arange(n - 1, -1, -1, dtype=np.float64))
    return float(a.mean() / math.sqrt(np.mean(a * a)))


# ---- non-negative linear attention with feature maps (C5) --------------------------------------
def _feature(name: str):
    from ..ops.featuremaps import NON_NEGATIVE

    fns = {
        "relu": lambda x: np.maximum(x, 0.0),
        "elu1": lambda x: np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0))),
        "exp": np.exp,
        "softplus": lambda x: np.logaddexp(0.0, x),
    }
    if name not in fns:
        raise ValueError(
            f"feature_map must be one of {', '.join(map(repr, sorted(fns)))} (non-negative, elementwise); got {name!r}"
        )
    assert name in NON_NEGATIVE
    return fns[name]


def feature_moments(feature_map: str, mu: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``μ̃`` and (diagonal) covariance ``Σ̃`` of ``φ(k)`` for ``k ~ N(μ, σ² I)``, per component,
    by quadrature (components are independent, so ``Σ̃`` is diagonal)."""
    f = _feature(feature_map)
    sigma = positive("sigma", sigma)
    m1, m2 = [], []
    for m in np.atleast_1d(mu).astype(float):
        lo, hi = m - 12 * sigma, m + 12 * sigma
        dens = lambda x, m=m: math.exp(-0.5 * ((x - m) / sigma) ** 2) / (sigma * _SQRT2PI)  # noqa: E731
        kink = [0.0] if lo < 0 < hi else None
        a, _ = integrate.quad(lambda x, d=dens: float(f(np.float64(x))) * d(x), lo, hi, points=kink, limit=200)
        b, _ = integrate.quad(lambda x, d=dens: float(f(np.float64(x))) ** 2 * d(x), lo, hi, points=kink, limit=200)
        m1.append(a)
        m2.append(b)
    mean = np.asarray(m1)
    return mean, np.diag(np.asarray(m2) - mean**2)


def linear_sparsity(q_tilde: np.ndarray, mu_tilde: np.ndarray, cov_tilde: np.ndarray) -> float:
    """``S = 1 / sqrt(1 + q̃ᵀ Σ̃ q̃ / (q̃ᵀ μ̃)²)`` (post 9889, eq. 9)."""
    q = np.asarray(q_tilde, float)
    num = float(q @ cov_tilde @ q)
    den = float(q @ mu_tilde) ** 2
    if den <= 0:
        raise ValueError("q̃ᵀμ̃ must be non-zero (a non-negative feature map of a non-zero query)")
    return 1.0 / math.sqrt(1.0 + num / den)


def linear_sparsity_iid(q_tilde: np.ndarray, mu_tilde: float, sigma_tilde: float) -> float:
    """The i.i.d.-component simplification ``S = 1 / sqrt(1 + (σ̃/μ̃ · ‖q̃‖₂/‖q̃‖₁)²)`` (eq. 10)."""
    q = np.asarray(q_tilde, float)
    r = sigma_tilde / mu_tilde * np.linalg.norm(q, 2) / np.linalg.norm(q, 1)
    return 1.0 / math.sqrt(1.0 + r * r)


def linear_sparsity_three_ways(
    feature_map: str,
    q: np.ndarray,
    mu: np.ndarray,
    sigma: float,
    *,
    samples: int = 200_000,
    batches: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """For keys ``k ~ N(μ, σ² I)`` and query ``q``: the formula with moments by quadrature, the
    i.i.d. form (when ``μ`` is constant), and Monte Carlo of ``a = φ(q)·φ(k)``."""
    f = _feature(feature_map)
    q, mu = np.asarray(q, float), np.asarray(mu, float)
    qt = f(q)
    mean, cov = feature_moments(feature_map, mu, sigma)
    out = {"formula": linear_sparsity(qt, mean, cov)}
    if np.allclose(mu, mu[0]):
        out["formula_iid"] = linear_sparsity_iid(qt, float(mean[0]), float(math.sqrt(cov[0, 0])))
    rng = np.random.default_rng(seed)
    per, ests = samples // batches, []
    for _ in range(batches):
        a = f(mu + sigma * rng.standard_normal((per, len(mu)))) @ qt
        ests.append(_sparsity_of_samples(a, False))
    out["monte_carlo"] = float(np.mean(ests))
    out["monte_carlo_stderr"] = float(np.std(ests, ddof=1) / math.sqrt(batches))
    return out
