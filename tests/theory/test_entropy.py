"""I2–I4: the entropy floor from first principles, and Gaussian-score entropy."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.theory.entropy import (
    cube_minimum,
    entropy_floor,
    entropy_floor_exact,
    entropy_gap,
    entropy_gap_numeric,
    entropy_of_scores,
    entropy_vs_dim,
    gaussian_entropy_limit,
    gaussian_entropy_mc,
    half_half_gap,
    t_star,
    tau_for_floor,
)


def test_the_posts_numbers_from_first_principles():
    e = math.e
    # the post's corrected closed form for t*, and its decimals, both reproduced
    assert t_star(1.0) == pytest.approx((e**4 - 3 * e**2) / (1 - 2 * e**2 + e**4), rel=1e-13)
    assert f"{t_star(1.0):.7f}" == "0.7944868"
    assert f"{entropy_gap(1.0):.7f}" == "0.4744746"
    assert f"{half_half_gap(1.0):.7f}" == "0.3278133"
    assert entropy_gap_numeric(1.0) == pytest.approx(entropy_gap(1.0), rel=1e-10)


@given(tau=st.floats(0.15, 500))
def test_closed_form_gap_equals_numerical_maximum(tau):
    assert entropy_gap(tau) == pytest.approx(entropy_gap_numeric(tau), rel=1e-7, abs=1e-12)
    assert 0.5 < t_star(tau) < 1


@pytest.mark.parametrize("n", [3, 10, 1000, 10**6])
def test_finite_n_floor_approaches_the_limit(n):
    out = entropy_floor(1.0, n)
    assert out["floor_exact"] <= math.log(n)
    # brute force over every vertex count k agrees with the vectorised exact minimum
    if n <= 1000:
        brute = min(entropy_of_scores([-1.0] * k + [1.0] * (n - k)) for k in range(n))
        assert out["floor_exact"] == pytest.approx(brute, rel=1e-12)
    if n >= 1000:
        assert out["floor_exact"] == pytest.approx(out["floor"], abs=1e-3)


@pytest.mark.parametrize("n,tau", [(4, 1.0), (6, 0.5), (8, 2.0)])
def test_minimiser_over_the_cube_sits_on_a_vertex(n, tau):
    res = cube_minimum(n, tau, starts=40, seed=n)
    assert res["vertex_distance"] < 1e-6
    assert res["H_min"] == pytest.approx(res["floor_exact"], abs=1e-9)


@pytest.mark.parametrize("floor,n", [(0.5, 1000), (2.0, 64), (0.05, 4096)])
def test_tau_for_floor_inverts_the_floor(floor, n):
    tau = tau_for_floor(floor, n)
    assert entropy_floor_exact(tau, n)[0] == pytest.approx(floor, abs=1e-9)
    # a lower floor needs a lower temperature
    assert tau_for_floor(floor / 2, n) < tau


def test_gaussian_scores_entropy_limit():
    mean, se = gaussian_entropy_mc(20000, 1.0, trials=40, seed=0)
    assert abs(mean - gaussian_entropy_limit(20000, 1.0)) < 5 * se + 2e-3
    # the post's "C ≈ 0.4745 at σ = 1" is not the Gaussian constant: that is σ²/2 = 0.5
    assert abs((math.log(20000) - mean) - 0.5) < 0.01


def test_scaling_keeps_entropy_independent_of_dim():
    scaled = [m for m, _ in entropy_vs_dim(256, [4, 64, 512], scaled=True, trials=60)]
    raw = [m for m, _ in entropy_vs_dim(256, [4, 64, 512], scaled=False, trials=60)]
    assert max(scaled) - min(scaled) < 0.15
    assert raw[-1] < 0.5 < raw[0]  # I4: without 1/√d the entropy collapses as d grows


@pytest.mark.parametrize(
    "call,msg",
    [
        (lambda: entropy_floor(0.0), "tau must be a positive"),
        (lambda: entropy_floor(-1.0, 5), "tau must be a positive"),
        (lambda: entropy_floor(1.0, 0), "n must be an integer >= 2"),
        (lambda: tau_for_floor(10.0, 100), r"floor must lie in \(0, log n\)"),
    ],
)
def test_errors(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_an_entropy_floor_needs_two_scores():
    import pytest

    from attnlab.theory.entropy import entropy_floor, entropy_floor_exact

    for f in (lambda: entropy_floor(1.0, 1), lambda: entropy_floor_exact(1.0, 1)):
        with pytest.raises(ValueError, match="n must be an integer >= 2, got 1"):
            f()
    assert entropy_floor(1.0, 2)["floor_exact"] >= 0
