"""attnlab's RMSNorm equals torch's, forward and every gradient, in float64 (the reference: nn.RMSNorm, which is
autograd of the formula), and keeps low-precision dtypes."""

import pytest
import torch

from attnlab.ops.norm import RMSNorm, rms_norm


@pytest.mark.parametrize("shape", [(3, 5, 8), (1, 1, 1), (2, 7, 3, 16)])
@pytest.mark.parametrize("eps", [None, 1e-5, 0.5])
def test_rms_norm_equals_torch_forward_and_backward(shape, eps):
    g = torch.Generator().manual_seed(len(shape))
    x = (torch.randn(*shape, generator=g, dtype=torch.float64) * 3).requires_grad_()
    ours, ref = RMSNorm(shape[-1], eps=eps).double(), torch.nn.RMSNorm(shape[-1], eps=eps).double()
    with torch.no_grad():
        w = torch.randn(shape[-1], generator=g, dtype=torch.float64)
        ours.weight.copy_(w)
        ref.weight.copy_(w)
    gy = torch.randn(*shape, generator=g, dtype=torch.float64)
    a, b = ours(x), ref(x)
    assert torch.allclose(a, b, atol=1e-12)
    ga = torch.autograd.grad(a, (x, ours.weight), gy)
    gb = torch.autograd.grad(b, (x, ref.weight), gy)
    assert all(torch.allclose(p, q, atol=1e-10) for p, q in zip(ga, gb))


def test_rms_norm_keeps_low_precision_dtypes_and_works_without_a_weight():
    x = torch.randn(2, 3, 8, dtype=torch.bfloat16)
    n = RMSNorm(8).to(torch.bfloat16)
    assert n(x).dtype == torch.bfloat16
    assert torch.allclose(n(x).float(), torch.nn.RMSNorm(8)(x.float()), atol=2e-2)
    y = torch.randn(2, 3, 8)
    assert torch.allclose(rms_norm(y, None), torch.nn.functional.rms_norm(y, (8,)))
    assert RMSNorm(8).state_dict().keys() == torch.nn.RMSNorm(8).state_dict().keys()
