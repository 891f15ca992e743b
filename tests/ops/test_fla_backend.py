"""The optional flash-linear-attention (Triton) backend of the delta rules.

On a machine without CUDA this checks the dispatch and its errors; with CUDA (a lent GPU) it checks
attnlab's own chunk form on the GPU against the float64 CPU recurrence, and fla's Triton kernels
against attnlab's chunk form: outputs, final states and gradients.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.mixers import build_mixer
from attnlab.ops.delta import gated_delta_rule
from attnlab.ops.delta_engines import choose
from attnlab.ops.fla_kernels import fla_unavailable_reason
from tests.helpers import assert_close, delta_inputs

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# fla's float32 dots may run in TF32 (10-bit mantissa): agreement to ~1e-3, not 1e-6
TF32_RATIO = 5e-3


def _fla_backward_refusal() -> str | None:
    """Why fla's kernels cannot give gradients on this machine (None where they can)."""
    if not torch.cuda.is_available():
        return "needs a CUDA device"
    return fla_unavailable_reason(torch.empty(1, device="cuda"), "chunk", needs_grad=True)


FLA_BACKWARD_REFUSAL = _fla_backward_refusal()


def _inputs(b, t, h, d, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    q, k, v, beta, g = delta_inputs(b, t, h, d, gen=gen)
    s0 = torch.randn(b, h, d, d, generator=gen)
    return [x.to(device) for x in (q, k, v, beta, g, s0)]


def test_fla_backend_refuses_cpu_tensors_with_a_reason():
    q, k, v, beta, g, _ = _inputs(1, 8, 1, 4)
    with pytest.raises(ValueError, match="backend='fla' needs CUDA tensors"):
        gated_delta_rule(q, k, v, g, beta, backend="fla")
    with pytest.raises(ValueError, match="chunk form only"):
        gated_delta_rule(q, k, v, g, beta, mode="recurrent", backend="fla")
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'native', 'pytorch', 'fla'"):
        gated_delta_rule(q, k, v, g, beta, backend="triton")
    assert "float64" in fla_unavailable_reason(torch.zeros(1, dtype=torch.float64, device="meta"), "chunk")


def test_auto_backend_passes_over_fla_off_gpu_and_says_why():
    q, k, v, beta, g, s0 = _inputs(2, 70, 2, 8)
    choice = choose("auto", q, k, v, g, beta, s0, mode="chunk", chunk_size=64, needs_grad=False)
    assert choice.engine in ("native", "pytorch")
    assert "needs CUDA tensors" in choice.passed_over["fla"]
    o1, S1 = gated_delta_rule(q, k, v, g, beta, initial_state=s0, output_final_state=True)
    o2, S2 = gated_delta_rule(q, k, v, g, beta, initial_state=s0, output_final_state=True, backend="auto")
    assert torch.equal(o1, o2) and torch.equal(S1, S2)


def test_mixer_backend_option_is_checked():
    m = build_mixer("deltanet", d_model=16, n_heads=2, backend="auto")
    assert m.backend == "auto"
    m(torch.randn(1, 5, 16))  # auto runs attnlab's own engines here
    with pytest.raises(ValueError, match="backend must be one of 'auto'; got 'fla'"):
        build_mixer("mesanet", d_model=16, n_heads=2, backend="fla")


def _run(tensors, gated, backend, device):
    leaves = [x.detach().clone().to(device).requires_grad_(True) for x in tensors]
    q, k, v, beta, g, s0 = leaves
    o, S = gated_delta_rule(q, k, v, g if gated else None, beta, initial_state=s0, output_final_state=True,
                            backend=backend)
    w = torch.linspace(-1, 1, o.shape[-1], device=device)
    ((o * w).sum() + 0.5 * S.sum()).backward()
    grads = [x.grad for x in leaves]
    if not gated:
        grads[4] = None
    return o.detach(), S.detach(), grads


@cuda
@pytest.mark.parametrize("gated", [False, True])
def test_torch_chunk_on_cuda_matches_float64_cpu_recurrence(gated):
    q, k, v, beta, g, s0 = _inputs(2, 200, 3, 32)
    ref = gated_delta_rule(q.double(), k.double(), v.double(), g.double() if gated else None, beta.double(),
                           mode="recurrent", initial_state=s0.double())
    out = gated_delta_rule(*(x.cuda() for x in (q, k, v)), g.cuda() if gated else None, beta.cuda(),
                           initial_state=s0.cuda(), backend="pytorch")
    assert out.is_cuda
    assert_close("o (cuda chunk vs cpu float64 recurrent)", ref, out.cpu(), ratio=1e-4)


@cuda
@settings(max_examples=8, deadline=None)  # each new shape compiles and autotunes Triton kernels: keep shapes few
@given(t=st.sampled_from([1, 63, 64, 130, 300]), h=st.sampled_from([1, 3]), d=st.sampled_from([32, 64]),
       gated=st.booleans())
def test_fla_triton_equals_torch_chunk(t, h, d, gated):
    q, k, v, beta, g, s0 = _inputs(2, t, h, d, seed=t, device="cuda")
    g = g if gated else None
    with torch.no_grad():
        o1, S1 = gated_delta_rule(q, k, v, g, beta, initial_state=s0, output_final_state=True, backend="pytorch")
        o2, S2 = gated_delta_rule(q, k, v, g, beta, initial_state=s0, output_final_state=True, backend="fla")
    assert_close("o", o1, o2, ratio=TF32_RATIO)
    assert_close("S", S1, S2, ratio=TF32_RATIO)


@cuda
@pytest.mark.skipif(FLA_BACKWARD_REFUSAL is not None, reason=f"fla cannot give gradients here: {FLA_BACKWARD_REFUSAL}")
@pytest.mark.parametrize("gated", [False, True])
def test_fla_triton_gradients_equal_torch_chunk(gated):
    tensors = _inputs(2, 130, 2, 64, device="cuda")
    _, _, g1 = _run(tensors, gated, "pytorch", "cuda")
    _, _, g2 = _run(tensors, gated, "fla", "cuda")
    for n, a, c in zip(["q", "k", "v", "beta", "g", "S0"], g1, g2):
        if a is not None:
            assert_close(f"grad {n}", a, c, ratio=10 * TF32_RATIO)


@cuda
@pytest.mark.skipif(FLA_BACKWARD_REFUSAL is None, reason="fla gives gradients here (checked by the test above)")
@pytest.mark.parametrize("gated", [False, True])
def test_fla_refuses_gradients_it_cannot_give_and_auto_falls_back(gated):
    """e.g. fla issue #640 on Hopper with Triton < 3.7.1: a clear ValueError, and ``auto`` = pytorch exactly."""
    tensors = _inputs(2, 130, 2, 64, device="cuda")
    with pytest.raises(ValueError, match="backend='fla'"):
        _run(tensors, gated, "fla", "cuda")
    o1, S1, g1 = _run(tensors, gated, "pytorch", "cuda")
    o3, S3, g3 = _run(tensors, gated, "auto", "cuda")
    assert torch.equal(o1, o3) and torch.equal(S1, S3)
    for a, c in zip(g1, g3):
        assert (a is None and c is None) or torch.equal(a, c)


@cuda
@pytest.mark.parametrize("name", ["deltanet", "gated_deltanet"])
def test_mixer_with_fla_backend_matches_torch_backend(name):
    torch.manual_seed(0)
    m = build_mixer(name, d_model=128, n_heads=2).cuda()
    x = torch.randn(2, 130, 128, device="cuda")
    with torch.no_grad():
        m.backend = "pytorch"
        ref = m(x)
        m.backend = "fla"
        assert_close(f"{name} fla vs torch", ref, m(x), ratio=TF32_RATIO)


@pytest.mark.parametrize(("capability", "triton_version", "refused"),
                         [((9, 0), "3.6.0", True), ((9, 0), "3.4.0", True), ((9, 0), "3.7.1", False),
                          ((9, 0), "3.3.1", False), ((8, 0), "3.6.0", False)])
def test_hopper_backward_guard(monkeypatch, capability, triton_version, refused):
    """fla issue #640: refused exactly on Hopper (sm_90) with Triton in [3.4, 3.7.1), and the reason says so."""
    import importlib.util
    import sys
    import types

    from attnlab.ops import fla_kernels

    monkeypatch.setitem(sys.modules, "triton", types.SimpleNamespace(__version__=triton_version))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tilelang" else find_spec(name, *a))
    why = fla_kernels._hopper_backward_bug()
    assert (why is not None) == refused
    if refused:
        assert "#640" in why and triton_version in why and "backend='pytorch'" in why
