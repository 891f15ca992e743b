"""C1–C6: closed forms against quadrature and Monte Carlo."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.theory.sparsity import (
    decay_sparsity,
    decay_sparsity_exact,
    linear_sparsity_three_ways,
    sparsity_formula,
    sparsity_identity,
    sparsity_monte_carlo,
    sparsity_quadrature,
    sparsity_relu2,
    sparsity_relu2_post,
)

GRID = [(b, g) for b in (-6.0, -2.0, -0.5, 0.0, 0.7, 3.0) for g in (0.05, 0.3, 1.0, 2.5, 8.0)]


@pytest.mark.parametrize("kernel", ["exp", "relu2", "identity"])
@pytest.mark.parametrize("beta,gamma", GRID)
def test_formula_equals_quadrature(kernel, beta, gamma):
    f, q = sparsity_formula(kernel, beta, gamma), sparsity_quadrature(kernel, beta, gamma)
    assert 0 <= f <= 1
    assert f == pytest.approx(q, rel=1e-6, abs=1e-300)


@pytest.mark.parametrize(
    "kernel,beta,gamma",
    [
        ("exp", 0.0, 0.3),
        ("exp", 2.0, 1.0),
        ("relu2", -0.5, 1.0),
        ("relu2", 1.0, 0.5),
        ("relu2", 0.0, 2.0),
        ("identity", -2.0, 1.0),
        ("identity", 0.5, 3.0),
        ("identity", 3.0, 0.5),
    ],
)
def test_formula_within_monte_carlo_error(kernel, beta, gamma):
    mc = sparsity_monte_carlo(kernel, beta, gamma, samples=100_000, seed=1)
    f = sparsity_formula(kernel, beta, gamma)
    assert abs(mc.value - f) <= 5 * mc.stderr + 1e-4, (mc, f)


def test_relu2_matches_the_posts_printed_formula_where_it_is_accurate():
    for b, g in [(-1.0, 2.0), (0.3, 0.7), (2.0, 1.0), (-2.0, 0.5)]:
        assert sparsity_relu2(b, g) == pytest.approx(sparsity_relu2_post(b, g), rel=1e-9)


def test_relu2_stable_far_in_the_tail():
    # β/γ = −40: the erf form cancels to garbage or fails; ours agrees with quadrature
    s = sparsity_relu2(-40.0, 1.0)
    assert 0 < s < 1e-150
    assert s == pytest.approx(sparsity_quadrature("relu2", -40.0, 1.0), rel=1e-6)
    # continuity across the switch to the asymptotic series at z = −20
    assert sparsity_relu2(-19.999, 1.0) == pytest.approx(sparsity_relu2(-20.001, 1.0), rel=1e-3)


def test_exp_no_overflow_and_independent_of_beta():
    assert sparsity_formula("exp", 5.0, 40.0) == math.exp(-800)
    assert sparsity_quadrature("exp", 0.0, 30.0) == pytest.approx(math.exp(-450), rel=1e-6)
    assert sparsity_formula("exp", -3.0, 1.3) == sparsity_formula("exp", 3.0, 1.3)


@given(beta=st.floats(-50, 50), gamma=st.floats(0.01, 50))
def test_identity_even_in_beta_and_bounded_below(beta, gamma):
    s = sparsity_identity(beta, gamma)
    assert s == pytest.approx(sparsity_identity(-beta, gamma), rel=1e-12)
    # C4: bounded away from 0 — at β = 0 it is √(2/π), and it only grows with |β|/γ
    assert s >= math.sqrt(2 / math.pi) - 1e-12


@given(beta=st.floats(-5, 5), gamma=st.floats(0.05, 5))
def test_relu2_tends_to_zero_only_for_negative_beta(beta, gamma):
    s = sparsity_relu2(beta, gamma)
    assert 0 <= s <= 1
    if beta >= 0:  # C3: bounded below by the β = 0 value (√(2/(3π))·… = S(0, γ)) for β ≥ 0
        assert s >= sparsity_relu2(0.0, 1.0) - 1e-12


def test_relu2_at_beta_zero_is_a_constant():
    # z = 0: B2 = R(0) = √(π/2)·1, B4 = 3R(0) → S = √(π/2)/√(3√(π/2))·√φ(0)
    r = math.sqrt(math.pi / 2)
    expected = r / math.sqrt(3 * r) * math.sqrt(1 / math.sqrt(2 * math.pi))
    assert sparsity_relu2(0.0, 0.37) == pytest.approx(expected, rel=1e-12)


@given(lam=st.floats(1e-3, 1.0), n=st.integers(1, 3000))
def test_decay_formula_equals_direct_sum(lam, n):
    assert decay_sparsity(lam, n) == pytest.approx(decay_sparsity_exact(lam, n), rel=1e-9)


def test_decay_sparsity_goes_to_zero():
    assert decay_sparsity(0.9, 10**6) < 0.01
    assert decay_sparsity(1.0, 10**6) == 1.0
    assert decay_sparsity(1 - 1e-13, 50) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("fmap", ["relu", "elu1", "exp", "softplus"])
def test_nonnegative_linear_attention_formula(fmap):
    rng = np.random.default_rng(3)
    q = rng.standard_normal(6)
    mu = np.full(6, 0.3)
    res = linear_sparsity_three_ways(fmap, q, mu, 0.8, samples=100_000, seed=2)
    assert res["formula"] == pytest.approx(res["formula_iid"], rel=1e-9)
    assert abs(res["monte_carlo"] - res["formula"]) <= 5 * res["monte_carlo_stderr"] + 1e-4
    # a non-constant mean: only the general formula applies
    res2 = linear_sparsity_three_ways(fmap, q, rng.standard_normal(6), 0.8, samples=100_000, seed=4)
    assert "formula_iid" not in res2
    assert abs(res2["monte_carlo"] - res2["formula"]) <= 5 * res2["monte_carlo_stderr"] + 1e-4


@pytest.mark.parametrize(
    "call,msg",
    [
        (lambda: sparsity_formula("exp", 0, 0), "gamma must be a positive"),
        (lambda: sparsity_formula("exp", 0, -1), "gamma must be a positive"),
        (lambda: sparsity_formula("tanh", 0, 1), "kernel must be one of"),
        (lambda: decay_sparsity(0.0, 5), r"lam must lie in \(0, 1\]"),
        (lambda: decay_sparsity(1.2, 5), r"lam must lie in \(0, 1\]"),
        (lambda: decay_sparsity(0.5, 0), "n must be an integer >= 1"),
        (lambda: sparsity_formula("relu2", float("nan"), 1), "beta must be a finite"),
    ],
)
def test_errors(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()
