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
