"""Conjugate gradient: exact after n steps, Krylov-optimal before, and still at a solved system."""

import pytest
import torch

from attnlab.ops.cg import conjugate_gradient


def _spd(n, batch=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(batch, n, n, generator=gen, dtype=torch.float64)
    A = M @ M.transpose(-1, -2) + 0.1 * torch.eye(n, dtype=torch.float64)
    return A, torch.randn(batch, n, generator=gen, dtype=torch.float64)


def _apply(A):
    return lambda x: (A @ x[..., None])[..., 0]


def test_n_steps_solve_exactly():
    A, b = _spd(6)
    x = conjugate_gradient(_apply(A), b, 6)
    assert torch.allclose(x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_k_steps_minimise_the_error_over_the_krylov_space(k):
    """Reference: the A-orthogonal projection of the solution onto span{b, Ab, …, A^(k−1) b}."""
    A, b = _spd(8, seed=k)
    basis = torch.stack([torch.linalg.matrix_power(A, j) @ b[..., None] for j in range(k)], -1)[..., 0, :]
    Q, _ = torch.linalg.qr(basis)  # [batch, n, k]
    y = torch.linalg.solve(Q.transpose(-1, -2) @ A @ Q, Q.transpose(-1, -2) @ b[..., None])
    ref = (Q @ y)[..., 0]
    assert torch.allclose(conjugate_gradient(_apply(A), b, k), ref, rtol=1e-7, atol=1e-9)


def test_a_solved_system_stays_put_with_finite_gradients():
    A, b = _spd(4, batch=2)
    b = b.clone()
    b[1] = 0  # r = 0 from the start: a naive CG divides 0 by 0 here
    b.requires_grad_(True)
    x = conjugate_gradient(_apply(A), b, 5)
    assert torch.isfinite(x).all() and (x[1] == 0).all()
    x.sum().backward()
    assert torch.isfinite(b.grad).all()
    x0 = torch.ones(2, 4, dtype=torch.float64)
    assert torch.allclose(conjugate_gradient(_apply(A), b.detach(), 4, x0=x0)[0], torch.linalg.solve(A[0], b[0]))
