"""R1–R3: predicted error of softmax under i.i.d. score noise, against simulation."""

import math

import pytest

from attnlab.theory.noise import (
    exp_moment,
    limit_bias,
    loglog_slope,
    noise_ratio,
    predicted_error,
    simulate_error,
)

NS = [64, 256, 1024, 4096]


@pytest.mark.parametrize("law,scale", [("gaussian", 0.5), ("uniform", 1.0), ("gumbel", 0.3), ("laplace", 0.3)])
def test_error_shrinks_like_inverse_sqrt_n_and_matches_prediction(law, scale):
    sims = [simulate_error(n, law, scale, trials=150, seed=7)[0] for n in NS]
    assert -0.62 < loglog_slope(NS, sims) < -0.38
    # at the largest n the first-order prediction is within 25%
    assert sims[-1] == pytest.approx(predicted_error(NS[-1], law, scale), rel=0.25)


def test_heavy_laplace_noise_breaks_the_argument():
    assert math.isinf(exp_moment("laplace", 1.0, 1)) and math.isinf(noise_ratio("laplace", 0.7))
    sims = [simulate_error(n, "laplace", 1.5, trials=80, seed=3)[0] for n in NS]
    assert loglog_slope(NS, sims) > -0.2  # R3: the error no longer vanishes


def test_exp_moments_against_sampling():
    import numpy as np

    from attnlab.theory.noise import sample_noise

    rng = np.random.default_rng(0)
    for law, scale in [("gaussian", 0.4), ("uniform", 0.8), ("gumbel", 0.2), ("laplace", 0.2)]:
        e = sample_noise(rng, law, scale, 400_000)
        assert np.mean(np.exp(e)) == pytest.approx(exp_moment(law, scale, 1), rel=5e-3)


def test_other_kernels_keep_a_bias():
    assert abs(limit_bias("exp", "gaussian", 0.8, samples=50_000)) < 1e-9
    assert abs(limit_bias("relu2", "gaussian", 0.8, samples=50_000)) > 0.05
    assert abs(limit_bias("identity", "gaussian", 0.8, samples=200_000)) < 0.01  # zero-mean: unbiased
    assert abs(limit_bias("identity", "gumbel", 0.8, samples=200_000)) > 0.1  # non-zero mean: biased
    # and the simulated relu² error stops shrinking: it is bias, not variance
    big = [
        simulate_error(n, "gaussian", 0.8, kernel="relu2", mu_s=1.0, values="score", trials=40, seed=1)[0]
        for n in (1024, 8192)
    ]
    assert big[1] > 0.6 * big[0]
    assert big[1] == pytest.approx(abs(limit_bias("relu2", "gaussian", 0.8, samples=50_000)), rel=0.2)
    soft = [simulate_error(n, "gaussian", 0.8, values="score", trials=40, seed=1)[0] for n in (1024, 8192)]
    assert soft[1] < 0.5 * soft[0]


def test_errors():
    with pytest.raises(ValueError, match="law must be one of"):
        predicted_error(10, "cauchy", 1.0)
    with pytest.raises(ValueError, match="scale must be a positive"):
        predicted_error(10, "gaussian", 0.0)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        predicted_error(0, "gaussian", 1.0)


def test_finite_n_bias_against_the_quadrature_limit_and_the_exp_cancellation():
    from attnlab.theory.noise import limit_bias, simulate_bias

    for law in ("gaussian", "gumbel"):  # relu² keeps the bias that quadrature gives for n → ∞
        b, se = simulate_bias(16384, law, 0.8, kernel="relu2", trials=60, seed=0)
        assert abs(b - limit_bias("relu2", law, 0.8, samples=100_000)) < 3 * se + 0.005
    b, se = simulate_bias(16384, "gaussian", 0.8, kernel="identity", trials=60, seed=0)
    assert abs(b) < 3 * se + 1e-3  # linear weights, zero-mean noise: unbiased
    small, _ = simulate_bias(256, "gumbel", 0.8, kernel="exp", trials=200, seed=0)
    large, se = simulate_bias(16384, "gumbel", 0.8, kernel="exp", trials=100, seed=0)
    assert abs(large) < abs(small) and abs(large) < 3 * se + 0.01  # exp's bias is finite-n only
