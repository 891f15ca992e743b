"""RMS normalisation ``y = x / sqrt(mean(x²) + eps) · w`` over the last dim, with a hand-written backward.

torch's ``nn.RMSNorm`` on the CPU runs as a graph of small ops (power, mean, reciprocal square root and two
products forward, each differentiated on its own backward): about 1 ms for a ``[16, 128, 64]`` block, four
times a LayerNorm of the same size, and five of them sat in every step of the ledger's models. Here the
forward keeps ``x`` and the per-row ``1/rms`` and the backward is the closed form

    x̂ = x / rms,  ĝ = g · w,  ∂x = (ĝ − x̂ · mean(ĝ · x̂)) / rms,  ∂w = Σ_rows g · x̂.

Inputs below float32 are normalised in float32 and returned in their own dtype, as torch does. On the CPU in
float32 both passes run compiled, one pass over the rows each (:func:`attnlab.ops.native.rms_norm`).

:func:`silu_l2_normalize` is DeltaNet's query and key map, ``silu(x) / max(‖silu(x)‖, eps)``, compiled the same
way (in PyTorch ops: silu, then ``F.normalize``, each pass with its own backward).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import native


def _compiled(x: torch.Tensor) -> bool:
    return x.numel() > 0 and native.runs(x)


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        inv = torch.rsqrt(x.pow(2).mean(-1, keepdim=True).add_(eps))  # 1/rms per row
        ctx.save_for_backward(x, weight, inv)
        return x * inv * weight

    @staticmethod
    def backward(ctx, g):
        x, weight, inv = ctx.saved_tensors
        xhat = x * inv
        gw = (g * xhat).reshape(-1, x.shape[-1]).sum(0) if ctx.needs_input_grad[1] else None
        gh = g * weight
        gx = (gh - xhat * (gh * xhat).mean(-1, keepdim=True)).mul_(inv)
        return gx, gw, None


class _NativeRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        x, weight = x.contiguous(), weight.contiguous()
        y, inv = native.rms_norm(x, weight, eps)
        ctx.save_for_backward(x, weight, inv)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, weight, inv = ctx.saved_tensors
        gx, gw = native.rms_norm_backward(x, weight, inv, g.contiguous(), ctx.needs_input_grad[1])
        return gx, gw, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float | None = None) -> torch.Tensor:
    """RMS-normalise ``x`` over its last dim and scale by ``weight`` (``eps`` None: the dtype's machine epsilon)."""
    if weight is None:
        return F.rms_norm(x, (x.shape[-1],), None, eps)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    e = torch.finfo(work.dtype).eps if eps is None else float(eps)
    fn = _NativeRMSNorm if _compiled(work) else _RMSNorm
    return fn.apply(work, weight.to(work.dtype), e).to(x.dtype)


class RMSNorm(nn.RMSNorm):
    """``nn.RMSNorm`` (same parameters, state dict and defaults) with the closed-form backward of :func:`rms_norm`,
    over the last dim."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.normalized_shape) != 1:
            return super().forward(x)
        return rms_norm(x, self.weight, self.eps)


class _SiluL2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, eps):
        x = x.contiguous()
        y, nrm = native.silu_l2(x, eps)
        ctx.save_for_backward(x, nrm)
        ctx.eps = eps
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, nrm = ctx.saved_tensors
        return native.silu_l2_backward(x, nrm, g.contiguous(), ctx.eps), None


def silu_l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize(F.silu(x), dim=-1, eps=eps)``: SiLU features scaled to unit L2 norm over the last dim."""
    if _compiled(x):
        return _SiluL2.apply(x, float(eps))
    return F.normalize(F.silu(x), dim=-1, eps=eps)
