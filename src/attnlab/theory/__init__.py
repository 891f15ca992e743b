"""Closed forms of posts 9889 (sparsity) and 9593 (entropy, noise), each with an independent check."""

from .entropy import (
    cube_minimum,
    entropy_floor,
    entropy_floor_exact,
    entropy_gap,
    entropy_gap_numeric,
    entropy_vs_dim,
    gaussian_entropy_limit,
    gaussian_entropy_mc,
    half_half_gap,
    t_star,
    tau_for_floor,
)
from .noise import exp_moment, limit_bias, loglog_slope, noise_ratio, predicted_error, simulate_error
from .sparsity import (
    decay_sparsity,
    decay_sparsity_exact,
    linear_sparsity,
    linear_sparsity_iid,
    linear_sparsity_three_ways,
    sparsity_formula,
    sparsity_monte_carlo,
    sparsity_quadrature,
    sparsity_three_ways,
)
