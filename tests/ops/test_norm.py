"""attnlab's RMSNorm equals torch's, forward and every gradient, in float64 (the reference: nn.RMSNorm, which is
autograd of the formula), and keeps low-precision dtypes; its compiled float32 form, and the compiled L2 norm of
SiLU features, equal autograd of the formula in float64."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.ops import native
from attnlab.ops import norm as norm_module
from attnlab.ops.norm import RMSNorm, rms_norm, silu_l2_normalize
from tests.helpers import assert_close

needs_native = pytest.mark.skipif(native.unavailable_reason() is not None,
                                  reason=f"native kernel unavailable: {native.unavailable_reason()}")


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


def _against_float64(fn, ref, x, params=(), ratio=1e-6):
    """``fn`` on float32 ``x`` (and ``params``) against ``ref`` in float64: the output and every gradient."""
    xs = [x.clone().requires_grad_(), *[p.clone().requires_grad_() for p in params]]
    rs = [t.double().requires_grad_() for t in (x, *params)]
    y, y_ref = fn(*xs), ref(*rs)
    gy = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y.backward(gy.float())
    y_ref.backward(gy)
    assert_close("y", y_ref, y, ratio=ratio)
    for i, (a, b) in enumerate(zip(rs, xs)):
        assert_close(f"grad {i}", a.grad, b.grad, ratio=ratio)
    return y


@needs_native
@settings(max_examples=30, deadline=None)
@given(lead=st.lists(st.integers(1, 6), min_size=1, max_size=3), d=st.integers(1, 140), seed=st.integers(0, 99),
       spread=st.sampled_from([1e-3, 1.0, 50.0]))
def test_compiled_rms_norm_equals_the_float64_formula(lead, d, seed, spread):
    gen = torch.Generator().manual_seed(seed)
    x, w = torch.randn(*lead, d, generator=gen) * spread, torch.randn(d, generator=gen)
    assert norm_module._compiled(x)
    y = _against_float64(lambda x, w: rms_norm(x, w, 1e-5), lambda x, w: F.rms_norm(x, (d,), w, 1e-5), x, (w,),
                         ratio=1e-5)
    assert type(y.grad_fn).__name__ == "_NativeRMSNormBackward"


@needs_native
@settings(max_examples=30, deadline=None)
@given(lead=st.lists(st.integers(1, 6), min_size=1, max_size=3), d=st.integers(1, 140), seed=st.integers(0, 99),
       spread=st.sampled_from([1e-3, 1.0, 30.0]))
def test_compiled_silu_l2_equals_the_float64_formula(lead, d, seed, spread):
    """Rows far below the norm's floor eps (spread 1e-3 with eps 1e-2: the norm is eps there, a constant) and
    far into SiLU's tails."""
    x = torch.randn(*lead, d, generator=torch.Generator().manual_seed(seed)) * spread
    _against_float64(lambda x: silu_l2_normalize(x, eps=1e-2),
                     lambda x: F.normalize(F.silu(x), dim=-1, eps=1e-2), x, ratio=1e-5)


@needs_native
def test_compiled_norms_take_strided_inputs_and_a_frozen_weight():
    x = torch.randn(6, 4, 24).transpose(0, 1)
    w = torch.randn(24)  # no gradient wanted
    xr = x.clone().requires_grad_()
    rms_norm(xr, w, 1e-5).sum().backward()
    xf = x.double().requires_grad_()
    F.rms_norm(xf, (24,), w.double(), 1e-5).sum().backward()
    assert_close("dx", xf.grad, xr.grad)
    assert_close("silu_l2", F.normalize(F.silu(x.double()), dim=-1, eps=1e-6), silu_l2_normalize(x, 1e-6))


def test_without_the_kernel_both_norms_run_in_pytorch(monkeypatch):
    monkeypatch.setattr(norm_module.native, "unavailable_reason", lambda: "no compiler here")
    x = torch.randn(3, 8, requires_grad=True)
    assert type(rms_norm(x, torch.ones(8)).grad_fn).__name__ == "_RMSNormBackward"
    assert torch.equal(silu_l2_normalize(x, 1e-6), F.normalize(F.silu(x), dim=-1, eps=1e-6))


@needs_native
def test_compiled_rms_norm_gradients_are_the_same_bits_on_any_number_of_threads():
    """A run resumed in a process with another thread count must retrace the original to the bit."""
    x, w, gy = torch.randn(300, 64), torch.randn(64), torch.randn(300, 64)
    before, grads = torch.get_num_threads(), []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
            rms_norm(xr, wr, 1e-5).backward(gy)
            grads.append((xr.grad, wr.grad))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for g in grads[1:] for a, b in zip(grads[0], g))
