import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.ops import short_conv, short_conv_step


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
