"""The short causal convolution against a loop over taps: its PyTorch form, and its compiled float32 form (with the
fused SiLU) against autograd of the loop in float64, every gradient included."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.mixers.base import ShortConv
from attnlab.ops import native, short_conv, short_conv_step
from tests.helpers import assert_close

needs_native = pytest.mark.skipif(native.unavailable_reason() is not None,
                                  reason=f"native kernel unavailable: {native.unavailable_reason()}")


def _loop(x, w):
    b, t, c = x.shape
    K = w.shape[1]
    y = torch.zeros_like(x)
    for s in range(t):
        for i in range(K):
            src = s - K + 1 + i
            if src >= 0:
                y[:, s] += w[:, i] * x[:, src]
    return y


@given(t=st.integers(1, 12), c=st.integers(1, 5), K=st.integers(1, 5))
def test_short_conv_matches_loop(t, c, K):
    x, w = torch.randn(2, t, c), torch.randn(c, K)
    assert torch.allclose(short_conv(x, w), _loop(x, w), atol=1e-5)


def test_step_and_pieces_equal_full():
    x, w = torch.randn(3, 15, 6), torch.randn(6, 4)
    full = short_conv(x, w)
    cache, ys = None, []
    for i in range(15):
        y, cache = short_conv_step(x[:, i], w, cache)
        ys.append(y)
    assert torch.allclose(torch.stack(ys, 1), full, atol=1e-6)
    a, c1 = short_conv(x[:, :2], w, output_cache=True)  # shorter than the kernel
    b, _ = short_conv(x[:, 2:], w, cache=c1, output_cache=True)
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-6)


def test_short_conv_is_causal_and_errors():
    x, w = torch.randn(1, 10, 2), torch.randn(2, 4)
    x2 = x.clone()
    x2[:, 6:] = 9.0
    assert torch.equal(short_conv(x2, w)[:, :6], short_conv(x, w)[:, :6])
    with pytest.raises(ValueError, match="weight must have one row per channel"):
        short_conv(x, torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"cache must have shape \(1, 2, 3\)"):
        short_conv(x, w, cache=torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="x must have 3 dimensions"):
        short_conv(x[0], w)


def _compiled_against_loop(b, t, c, K, activation, seed):
    gen = torch.Generator().manual_seed(seed)
    x, w = torch.randn(b, t, c, generator=gen).requires_grad_(), torch.randn(c, K, generator=gen).requires_grad_()
    y = short_conv(x, w, activation=activation)
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    y64 = _loop(x64, w64)
    y64 = F.silu(y64) if activation == "silu" else y64
    gy = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    y.backward(gy.float())
    y64.backward(gy)
    assert_close("y", y64, y)
    assert_close("dx", x64.grad, x.grad)
    assert_close("dw", w64.grad, w.grad)
    return y


@needs_native
@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(1, 40), c=st.integers(1, 40), K=st.integers(1, 6),
       activation=st.sampled_from([None, "silu"]), seed=st.integers(0, 99))
def test_compiled_short_conv_equals_the_float64_loop(b, t, c, K, activation, seed):
    """Lengths shorter than the kernel, channels that do not fill the kernel's 16-channel blocks."""
    y = _compiled_against_loop(b, t, c, K, activation, seed)
    assert type(y.grad_fn).__name__ == "_NativeShortConvBackward"


@needs_native
def test_compiled_short_conv_gradients_have_the_same_bits_on_any_thread_count():
    gen = torch.Generator().manual_seed(0)
    x, w, gy = torch.randn(4, 50, 70, generator=gen), torch.randn(70, 4, generator=gen), torch.randn(4, 50, 70)
    grads = []
    for threads in (1, 2, 3):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
            grads.append(torch.autograd.grad(short_conv(xs, ws, activation="silu"), (xs, ws), gy))
        finally:
            torch.set_num_threads(before)
    assert all(torch.equal(a, b) for g in grads[1:] for a, b in zip(grads[0], g))


def test_the_pytorch_form_runs_where_the_compiled_one_cannot():
    """Float64, a bias, a cache, or the kernels turned off: the PyTorch ops, with the same activation."""
    x, w = torch.randn(2, 9, 5, requires_grad=True), torch.randn(5, 3)
    with native.disabled():
        y = short_conv(x, w, activation="silu")
    assert type(y.grad_fn).__name__ != "_NativeShortConvBackward"
    assert torch.allclose(y, F.silu(_loop(x, w)), atol=1e-6)
    assert torch.allclose(short_conv(x.double(), w.double(), activation="silu"), F.silu(_loop(x, w)).double(),
                          atol=1e-6)
    bias = torch.randn(5)
    assert torch.allclose(short_conv(x, w, bias=bias), _loop(x, w) + bias, atol=1e-6)
    with pytest.raises(ValueError, match="activation must be None or 'silu', got 'relu'"):
        short_conv(x, w, activation="relu")


def test_short_conv_module_decodes_step_by_step_as_its_full_forward():
    """The module's SiLU is fused into the compiled forward; decoding runs through the cache in PyTorch."""
    torch.manual_seed(0)
    conv, x = ShortConv(6, 4, "silu"), torch.randn(2, 11, 6)
    full, cache, ys = conv(x), {}, []
    for i in range(11):
        ys.append(conv(x[:, i : i + 1], cache, "k"))
    assert torch.allclose(torch.cat(ys, 1), full, atol=1e-6)
    y, _ = short_conv_step(x[:, 0], conv.weight.detach(), activation="silu")
    assert torch.allclose(y, full[:, 0], atol=1e-6)
