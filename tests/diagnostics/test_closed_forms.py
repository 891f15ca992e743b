"""Diagnostics on matrices whose entropy, sparsity and rank are known exactly."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.diagnostics import (
    effective_rank,
    hoyer,
    l1_l2_sparsity,
    normalized_entropy,
    numerical_rank,
    row_entropy,
    singular_values,
)


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_uniform_rows_have_entropy_log_n_and_sparsity_one(n):
    P = torch.full((2, 3, 5, n), 1.0 / n)
    assert torch.allclose(row_entropy(P), torch.full((2, 3, 5), math.log(n), dtype=torch.float64), atol=1e-6)
    assert torch.allclose(l1_l2_sparsity(P), torch.ones(2, 3, 5, dtype=torch.float64))
    assert torch.allclose(hoyer(P), torch.zeros(2, 3, 5, dtype=torch.float64), atol=1e-12)


def test_one_hot_rows():
    P = torch.eye(6)[None, None]
    assert torch.equal(row_entropy(P), torch.zeros(1, 1, 6, dtype=torch.float64))
    assert torch.allclose(l1_l2_sparsity(P), torch.full((1, 1, 6), 6**-0.5, dtype=torch.float64))
    assert torch.allclose(hoyer(P), torch.ones(1, 1, 6, dtype=torch.float64))


def test_known_vectors():
    x = torch.tensor([3.0, -4.0, 0.0, 0.0])  # ‖x‖₁ = 7, ‖x‖₂ = 5, n = 4
    assert float(l1_l2_sparsity(x)) == pytest.approx(7 / (2 * 5))
    assert float(hoyer(x)) == pytest.approx((2 - 7 / 5) / (2 - 1))
    assert float(l1_l2_sparsity(torch.zeros(5))) == 0.0


def test_causal_masked_rows_use_valid_count():
    t = 5
    mask = torch.ones(t, t).tril().bool()
    P = mask.double() / mask.sum(-1, keepdim=True)
    assert torch.allclose(row_entropy(P, mask), torch.log(torch.arange(1, t + 1, dtype=torch.float64)))
    ne = normalized_entropy(P, mask)
    assert ne[0] == 0 and torch.allclose(ne[1:], torch.ones(t - 1, dtype=torch.float64))
    assert torch.allclose(l1_l2_sparsity(P, mask), torch.ones(t, dtype=torch.float64))


def test_entropy_against_scipy():
    from scipy.stats import entropy

    P = torch.softmax(torch.randn(4, 9, generator=torch.Generator().manual_seed(0)), -1)
    ref = torch.tensor([entropy(r.numpy()) for r in P], dtype=torch.float64)
    assert torch.allclose(row_entropy(P), ref, atol=1e-6)


def test_entropy_rejects_non_probability_rows():
    with pytest.raises(ValueError, match="sum to 1"):
        row_entropy(torch.ones(3, 3))
    with pytest.raises(ValueError, match="non-negative"):
        row_entropy(torch.tensor([[1.5, -0.5]]))
    with pytest.raises(ValueError, match="broadcast"):
        row_entropy(torch.full((3, 3), 1 / 3), mask=torch.ones(2, 2))


def test_identical_rows_have_rank_one():
    row = torch.softmax(torch.randn(10, generator=torch.Generator().manual_seed(1)), -1)
    P = row.expand(10, 10)
    assert int(numerical_rank(P)) == 1
    assert float(effective_rank(P)) == pytest.approx(1.0, abs=1e-6)


@given(st.integers(2, 40), st.integers(0, 10_000))
def test_lower_triangular_with_positive_diagonal_is_full_rank(n, seed):
    g = torch.Generator().manual_seed(seed)
    L = torch.rand(n, n, generator=g, dtype=torch.float64).tril() + torch.eye(n, dtype=torch.float64)
    assert int(numerical_rank(L)) == n


def test_effective_rank_of_diagonal_matrices():
    assert float(effective_rank(torch.eye(7))) == pytest.approx(7.0)
    s = torch.tensor([3.0, 1.0, 0.0])
    p = s[:2] / 4
    expect = math.exp(-(p * p.log()).sum())
    assert float(effective_rank(torch.diag(s))) == pytest.approx(expect)
    assert torch.allclose(singular_values(torch.diag(s)), torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64))


def test_rank_rejects_vectors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        numerical_rank(torch.ones(4))


def test_hoyer_stays_in_its_range_and_zero_rows_are_defined():
    import torch

    from attnlab.diagnostics import hoyer

    assert float(hoyer(torch.zeros(1, 4))) == 0.0  # no mass: concentrates on nothing
    relu2_rows = torch.relu(torch.randn(64, 9)).pow(2)
    relu2_rows[:10] = 0.0  # rows whose scores were all negative
    h = hoyer(relu2_rows)
    assert bool(((h >= 0) & (h <= 1)).all()) and bool((h[:10] == 0).all())
    assert float(hoyer(torch.tensor([[0.0, 0.0, 3.0, 0.0]]))) == 1.0
    masked = hoyer(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([[False, True, True, True]]))
    assert float(masked) == 0.0  # nothing counted carries mass


def test_causal_attention_refuses_fewer_keys_than_queries():
    import pytest
    import torch

    from attnlab.ops import attention

    with pytest.raises(ValueError, match="at least as many keys as queries: got 8 queries and 5 keys"):
        attention(torch.randn(1, 8, 2, 4), torch.randn(1, 5, 2, 4), torch.randn(1, 5, 2, 4))
    assert attention(torch.randn(1, 8, 2, 4), torch.randn(1, 5, 2, 4), torch.randn(1, 5, 2, 4),
                     mask="bidirectional").isfinite().all()
