"""Short causal depthwise convolution, the "short conv" of post 11320 (and of Mamba, DeltaNet).

``y[:, t, c] = Σ_{i<K} w[c, i] · x[:, t − K + 1 + i, c]`` with zeros before the start (or the
cached last ``K − 1`` inputs when decoding), which is ``conv1d`` with left padding ``K − 1``, and
optionally SiLU after it.

In training (float32 on the CPU, no cache, no bias) the convolution and its SiLU run as one compiled pass
each way (``csrc/conv.c``): in PyTorch ops the transposes, the padded concatenation, oneDNN's depthwise
``conv1d`` and SiLU, each with its backward, were 11% of a step of S5's one-layer MQAR models
(``docs/benchmarks.md``). Elsewhere, and when decoding, the PyTorch ops run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ..checks import check_tensor
from . import native

ACTIVATIONS = (None, "silu")


class _NativeShortConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, silu):
        x, weight = x.contiguous(), weight.contiguous()
        ctx.save_for_backward(x, weight)
        ctx.silu = silu
        return native.short_conv(x, weight, silu)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        dx, dw = native.short_conv_backward(x, weight, g.contiguous(), ctx.silu)
        return dx, dw, None


def _check_weight(weight: torch.Tensor, c: int) -> int:
    check_tensor("weight", weight, 2, "[channels, kernel_size]")
    if weight.shape[0] != c:
        raise ValueError(f"weight must have one row per channel of x ({c}), got shape {tuple(weight.shape)}")
    return weight.shape[1]


def _check_cache(cache: torch.Tensor | None, b: int, c: int, K: int) -> None:
    if cache is None:
        return
    check_tensor("cache", cache, 3, "[batch, channels, kernel_size - 1]")
    if tuple(cache.shape) != (b, c, K - 1):
        raise ValueError(
            f"cache must have shape {(b, c, K - 1)} [batch, channels, kernel_size - 1], got {tuple(cache.shape)}"
        )


def short_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    cache: torch.Tensor | None = None,
    output_cache: bool = False,
    activation: str | None = None,
):
    """Causal depthwise conv of ``x [b, t, c]`` with ``weight [c, K]`` (K is usually 4), then
    ``activation`` (None or ``"silu"``).

    ``cache [b, c, K − 1]`` holds the inputs before ``x`` (a previous call's ``output_cache``),
    so a long sequence can be fed in pieces or one token at a time. Returns ``y [b, t, c]``,
    and ``(y, new_cache)`` when ``output_cache`` is True (the cache holds inputs, not activations).
    """
    check_tensor("x", x, 3, "[batch, seq, channels]")
    b, t, c = x.shape
    if t == 0:
        raise ValueError("x must hold at least one token (seq ≥ 1); got seq = 0")
    K = _check_weight(weight, c)
    _check_cache(cache, b, c, K)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be None or 'silu', got {activation!r}")
    if (cache is None and not output_cache and bias is None and native.runs(x) and weight.dtype == torch.float32
            and weight.device.type == "cpu"):
        return _NativeShortConv.apply(x, weight, activation == "silu")
    xt = x.transpose(1, 2)  # (b, c, t)
    left = xt.new_zeros(b, c, K - 1) if cache is None else cache.to(x.dtype)
    xt = torch.cat([left, xt], dim=-1)  # (b, c, K - 1 + t)
    y = F.conv1d(xt, weight.to(x.dtype)[:, None, :], bias=None if bias is None else bias.to(x.dtype), groups=c)
    y = y.transpose(1, 2)
    if activation == "silu":
        y = F.silu(y)
    if not output_cache:
        return y
    return y, xt[..., xt.shape[-1] - (K - 1) :].clone()


def short_conv_step(x_t: torch.Tensor, weight: torch.Tensor, cache: torch.Tensor | None = None, *, bias=None,
                    activation: str | None = None):
    """One decoding step: ``x_t [b, c]``; returns ``(y_t [b, c], new_cache [b, c, K − 1])``."""
    check_tensor("x_t", x_t, 2, "[batch, channels]")
    y, new_cache = short_conv(x_t[:, None], weight, bias=bias, cache=cache, output_cache=True, activation=activation)
    return y[:, 0], new_cache
