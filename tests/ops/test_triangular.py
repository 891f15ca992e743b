"""The blocked inverse of a unit lower-triangular matrix against LAPACK's triangular solve in float64."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.ops.triangular import unit_lower_inverse
from tests.helpers import assert_close


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 80), batch=st.integers(1, 3), scale=st.sampled_from([0.1, 0.5, 1.0]), seed=st.integers(0, 99))
def test_inverse_matches_lapack(c, batch, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    A = (scale * torch.randn(batch, c, c, generator=gen, dtype=torch.float64)).tril(-1)
    eye = torch.eye(c, dtype=torch.float64)
    ref = torch.linalg.solve_triangular(eye + A, eye.expand(batch, c, c), upper=False, unitriangular=True)
    X = unit_lower_inverse(A)
    assert_close("inverse", ref, X, ratio=1e-10, atol=1e-10)
    assert torch.equal(X.triu(1), torch.zeros_like(X))  # stays lower-triangular exactly


@pytest.mark.parametrize("c", [16, 64, 100])
def test_float32_accuracy_on_delta_rule_blocks(c):
    """The blocks the delta rule inverts (β KKᵀ with unit keys, even all keys equal) keep float32 accuracy."""
    gen = torch.Generator().manual_seed(c)
    k = torch.nn.functional.normalize(torch.randn(8, c, 32, generator=gen), dim=-1)
    k[0] = k[0, :1]  # every key the same: the worst case for cancellation
    beta = torch.rand(8, c, 1, generator=gen)
    beta[0] = 1.0
    A = (beta * (k @ k.transpose(-1, -2))).tril(-1)
    eye = torch.eye(c, dtype=torch.float64)
    ref = torch.linalg.solve_triangular(eye + A.double(), eye.expand(8, c, c), upper=False, unitriangular=True)
    assert_close("float32 inverse", ref, unit_lower_inverse(A), ratio=1e-5)


def test_gradients_flow_through_the_inverse():
    A = (0.3 * torch.randn(1, 34, 34, dtype=torch.float64)).tril(-1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: unit_lower_inverse(a.tril(-1)), (A,), fast_mode=True)
