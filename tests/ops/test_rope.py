import pytest
import torch

from attnlab.ops import rope


def _complex_reference(x, positions, base):
    # RoPE as a complex multiplication of the pairs (x_i, x_{i+d/2})
    d = x.shape[-1]
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double())
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rot = torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64), positions.double()[:, None] * freqs)
    z = z * rot[None, :, None, :]
    return torch.cat([z.real, z.imag], dim=-1)


def test_rope_matches_complex_rotation():
    x = torch.randn(2, 10, 3, 8)
    pos = torch.arange(10) * 3 + 5
    assert torch.allclose(rope(x, pos, base=100.0).double(), _complex_reference(x, pos, 100.0), atol=1e-5)


def test_rope_scores_depend_on_relative_position_only():
    q, k = torch.randn(2, 1, 1, 1, 16).unbind(0)

    def score(m, n):
        return float((rope(q, torch.tensor([m])) * rope(k, torch.tensor([n]))).sum())

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)
    assert score(0, 0) == pytest.approx(float((q * k).sum()), abs=1e-5)
    assert score(7, 3) != pytest.approx(score(3, 7), abs=1e-3)


def test_rope_keeps_norms_and_errors():
    x = torch.randn(1, 6, 2, 4)
    assert torch.allclose(rope(x).norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    with pytest.raises(ValueError, match="head dim must be even"):
        rope(torch.randn(1, 2, 1, 3))
    with pytest.raises(ValueError, match="positions must have shape"):
        rope(x, torch.arange(5))


def _rope_by_autograd(x, positions, base):
    # the formula written out, differentiated by autograd: the reference for the hand-written backward
    d = x.shape[-1]
    ang = positions.double()[:, None] * base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


@pytest.mark.parametrize("start", [0, 5])
def test_rope_gradient_is_the_inverse_rotation_of_autograd_s(start):
    g = torch.Generator().manual_seed(start)
    x = torch.randn(2, 7, 3, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 7, 3, 8, generator=g, dtype=torch.float64)
    pos = torch.arange(start, start + 7)
    ours = rope(x, base=100.0, start=start)
    ref = _rope_by_autograd(x, pos, 100.0)
    assert ours.dtype == torch.float64 and torch.allclose(ours, ref, atol=1e-13)
    assert torch.allclose(torch.autograd.grad(ours, x, w)[0], torch.autograd.grad(ref, x, w)[0], atol=1e-13)
    assert torch.equal(rope(x, pos, base=100.0), ours)  # the cached angles are the explicit positions' angles


def test_rope_keeps_the_dtype_and_refuses_a_bad_start():
    x = torch.randn(1, 4, 2, 8, dtype=torch.bfloat16)
    assert rope(x).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="start must be a whole number"):
        rope(x, start=-1)
