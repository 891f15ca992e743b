"""SwiGLU's compiled forward and backward (attnlab.ops.swiglu) against the float64 PyTorch formula."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.models.lm import MLP
from attnlab.ops import native
from attnlab.ops import swiglu as swiglu_module
from attnlab.ops.swiglu import compiled, swiglu
from tests.helpers import assert_close

needs_native = pytest.mark.skipif(native.unavailable_reason() is not None,
                                  reason=f"native kernel unavailable: {native.unavailable_reason()}")


def reference(u: torch.Tensor) -> torch.Tensor:
    a, b = u.chunk(2, -1)
    return F.silu(a) * b


def _check(u: torch.Tensor, ratio: float = 1e-6) -> None:
    x = u.clone().requires_grad_()
    ref = u.double().requires_grad_()
    y, y_ref = swiglu(x), reference(ref)
    g = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y.backward(g.float())
    y_ref.backward(g)
    assert y.dtype == u.dtype
    assert_close("y", y_ref, y, ratio=ratio)
    assert_close("du", ref.grad, x.grad, ratio=ratio)


@needs_native
@settings(max_examples=40, deadline=None)
@given(lead=st.lists(st.integers(1, 5), min_size=0, max_size=3), h=st.integers(1, 70), seed=st.integers(0, 99),
       spread=st.sampled_from([0.1, 3.0, 30.0]))
def test_compiled_swiglu_equals_the_float64_formula(lead, h, seed, spread):
    """Values and gradient over leading shapes, widths that are not a multiple of the vector width, and inputs
    far into the sigmoid's tails."""
    u = torch.randn(*lead, 2 * h, generator=torch.Generator().manual_seed(seed)) * spread
    assert compiled(u)
    _check(u)


@needs_native
def test_compiled_swiglu_runs_in_training_and_reads_strided_inputs():
    u = torch.randn(8, 6, 2 * 24).transpose(0, 1)  # not contiguous
    _check(u)
    x = torch.randn(4, 10, requires_grad=True)
    assert type(swiglu(x).grad_fn).__name__ == "_SwiGLUBackward"


def test_other_dtypes_and_a_machine_without_the_kernel_run_the_pytorch_formula(monkeypatch):
    u = torch.randn(3, 5, 16, dtype=torch.float64)
    assert not compiled(u) and torch.equal(swiglu(u), reference(u))
    monkeypatch.setattr(swiglu_module.native, "unavailable_reason", lambda: "no compiler here")
    v = torch.randn(3, 5, 16, requires_grad=True)
    assert not compiled(v)
    y = swiglu(v)
    assert type(y.grad_fn).__name__ == "MulBackward0" and torch.equal(y, reference(v))


@needs_native
def test_non_finite_inputs_stay_visible():
    u = torch.randn(2, 8)
    u[0, 1] = float("nan")
    u[1, 6] = float("inf")  # b = inf
    y = swiglu(u)
    assert torch.isnan(y[0, 1]) and torch.isinf(y[1, 2]) == torch.isinf(reference(u)[1, 2])
    assert torch.isfinite(y[0, [0, 2, 3]]).all()


@pytest.mark.parametrize("shape", [(3, 5), (7,), ()])
def test_an_odd_or_missing_last_dim_is_refused_in_one_line(shape):
    with pytest.raises(ValueError, match=r"u must be a tensor whose last dim is even \(\[a \| b\]\)"):
        swiglu(torch.randn(shape))


def test_the_mlp_is_the_swiglu_of_its_projections():
    torch.manual_seed(0)
    mlp = MLP(16, 4.0)
    x = torch.randn(2, 9, 16)
    assert_close("mlp", mlp.down(reference(mlp.up(x))), mlp(x), ratio=1e-6)
