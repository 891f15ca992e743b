"""Quadratic attention ``o_i = sum_j a_ij v_j`` with ``a_ij ∝ f(q_i·k_j)``.

``kernel="exp"`` is softmax attention; ``"relu2"`` and ``"identity"`` are the ``f(q·k)``
attentions that post 9889 ("can attention concentrate?") compares against it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..checks import check_choice, check_qkv
from .masks import MASKS, build_mask
from .precision import acc

KERNELS = ("exp", "relu2", "identity")
_EPS = 1e-12


def attention_probs(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    kernel: str = "exp",
    mask: str = "causal",
    prefix_len: int | Sequence[int] | torch.Tensor | None = None,
    scale: float | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """The attention matrix ``[b, h, t_q, t_k]`` of :func:`attention` (float32 math; float64 inputs stay float64)."""
    check_choice("kernel", kernel, KERNELS)
    check_choice("mask", mask, MASKS)
    b, t, h, d = q.shape
    scale = d**-0.5 if scale is None else float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale}")
    qf, kf = acc(q), acc(k)
    s = torch.einsum("bqhd,bkhd->bhqk", qf, kf) * scale  # [b, h, t, t_k]
    allowed = build_mask(mask, t, batch=b, n_heads=h, prefix_len=prefix_len, device=q.device, t_k=k.shape[1])
    if kernel == "exp":
        s = s.masked_fill(~allowed, float("-inf"))
        if normalize:
            return torch.softmax(s, dim=-1)
        # raw exp scores overflow easily; the caller asked for them, so give them unshifted
        return torch.exp(s)
    if kernel == "relu2" and normalize:
        # relu(s)² overflows float32 for scores past ~1e19; the normalised row is unchanged by dividing the
        # scores by the row's largest first. A row with no positive score stays a row of zeros, not 0/0.
        r = torch.relu(s).masked_fill(~allowed, 0.0)
        a = (r / r.amax(-1, keepdim=True).clamp_min(_EPS)) ** 2
        return a / a.sum(-1, keepdim=True).clamp_min(_EPS)
    a = torch.relu(s) ** 2 if kernel == "relu2" else s
    a = a.masked_fill(~allowed, 0.0)
    if not normalize:
        return a
    # identity: the plain row sum can be 0 or negative; divide by the l1 norm instead, which
    # equals the row sum whenever all scores are non-negative and is always finite
    return a / a.abs().sum(-1, keepdim=True).clamp_min(_EPS)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    kernel: str = "exp",
    mask: str = "causal",
    prefix_len: int | Sequence[int] | torch.Tensor | None = None,
    scale: float | None = None,
    normalize: bool = True,
    return_probs: bool = False,
):
    """Attention over ``q, k [b, t, h, d_k]`` and ``v [b, t, h, d_v]``; returns ``o [b, t, h, d_v]``.

    Args:
        kernel: ``"exp"`` softmax attention; ``"relu2"`` ``a_ij ∝ relu(s_ij)²``; ``"identity"``
            ``a_ij ∝ s_ij``, with ``s_ij = scale · q_i·k_j``.
        mask: ``"causal"``, ``"bidirectional"``, ``"prefix"`` (UniLM: bidirectional among the first
            ``prefix_len`` positions, causal after) or ``"fwd_bwd"`` (the first ceil(h/2) heads
            causal left-to-right, the others right-to-left; with ``prefix_len``, mixed over the
            prefix and causal after it; post 9529).
        prefix_len: an int, or one int per batch row, in ``[0, t]``.
        scale: score scale, default ``d_k ** -0.5``.
        normalize: divide each row by its sum (softmax for ``exp``). ``relu2`` rows with no positive
            score stay all zero. ``identity`` rows are divided by the sum of absolute values
            (the ℓ1 norm), because the plain sum can be zero or negative; for a row of
            non-negative scores the two agree. With ``normalize=False`` the raw ``f(s)`` is used
            (masked entries are 0).
        return_probs: also return the ``[b, h, t, t]`` matrix.

    Keys and values may be longer than the queries (``t_k > t``, a decoding cache) with the causal
    or bidirectional mask; the queries are then the last ``t`` positions.

    The math runs in float32 (float64 inputs: float64) and the output is cast back to ``v``'s dtype.
    """
    check_qkv(q, k, v, same_len=False)
    if (kernel == "exp" and normalize and not return_probs and mask in ("causal", "bidirectional") and prefix_len is None
            and (mask == "bidirectional" or q.shape[1] == k.shape[1])):
        # the fused kernel: no [b, h, t, t] matrix is kept for the backward (the same math as attention_probs;
        # SDPA's is_causal aligns the mask to the first key, so a decoding cache takes the explicit path)
        check_choice("kernel", kernel, KERNELS)
        sc = q.shape[-1] ** -0.5 if scale is None else float(scale)
        if not math.isfinite(sc):
            raise ValueError(f"scale must be a finite number, got {sc}")
        qa, ka, va = (acc(x).transpose(1, 2) for x in (q, k, v))
        o = F.scaled_dot_product_attention(qa, ka, va.to(qa.dtype), is_causal=mask == "causal", scale=sc)
        # the fused kernel turns a NaN score row into zeros; the explicit path (and the trainer's loss check)
        # relies on NaN propagating, so a NaN or Inf anywhere in q or k makes the output NaN: two O(n) sums, no
        # sync, no backward. In float64 no sum of float32 values overflows, so the term is 0 for finite q, k.
        with torch.no_grad():
            if qa.dtype == torch.float64:  # 0 · x is 0 for every finite x, however large
                poison = qa.mul(0).sum() + ka.mul(0).sum()
            else:
                poison = ((qa.sum(dtype=torch.float64) + ka.sum(dtype=torch.float64)) * 0).to(o.dtype)
        o = o + poison
        return o.transpose(1, 2).to(v.dtype)
    p = attention_probs(q, k, kernel=kernel, mask=mask, prefix_len=prefix_len, scale=scale, normalize=normalize)
    o = torch.einsum("bhqk,bkhd->bqhd", p, acc(v)).to(v.dtype)
    return (o, p) if return_probs else o
