"""Short causal depthwise convolution, the "short conv" of post 11320 (and of Mamba, DeltaNet).

``y[:, t, c] = Σ_{i<K} w[c, i] · x[:, t − K + 1 + i, c]`` with zeros before the start (or the
cached last ``K − 1`` inputs when decoding), which is ``conv1d`` with left padding ``K − 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_tensor


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
):
    """Causal depthwise conv of ``x [b, t, c]`` with ``weight [c, K]`` (K is usually 4).

    ``cache [b, c, K − 1]`` holds the inputs before ``x`` (a previous call's ``output_cache``),
    so a long sequence can be fed in pieces or one token at a time. Returns ``y [b, t, c]``,
    and ``(y, new_cache)`` when ``output_cache`` is True.
    """
    check_tensor("x", x, 3, "[batch, seq, channels]")
    b, t, c = x.shape
    if t == 0:
        raise ValueError("x must hold at least one token (seq ≥ 1); got seq = 0")
    K = _check_weight(weight, c)
    _check_cache(cache, b, c, K)
    xt = x.transpose(1, 2)  # (b, c, t)
    left = xt.new_zeros(b, c, K - 1) if cache is None else cache.to(x.dtype)
    xt = torch.cat([left, xt], dim=-1)  # (b, c, K - 1 + t)
    y = F.conv1d(xt, weight.to(x.dtype)[:, None, :], bias=None if bias is None else bias.to(x.dtype), groups=c)
    y = y.transpose(1, 2)
    if not output_cache:
        return y
    return y, xt[..., xt.shape[-1] - (K - 1) :].clone()


def short_conv_step(x_t: torch.Tensor, weight: torch.Tensor, cache: torch.Tensor | None = None, *, bias=None):
    """One decoding step: ``x_t [b, c]``; returns ``(y_t [b, c], new_cache [b, c, K − 1])``."""
    check_tensor("x_t", x_t, 2, "[batch, channels]")
    y, new_cache = short_conv(x_t[:, None], weight, bias=bias, cache=cache, output_cache=True)
    return y[:, 0], new_cache
