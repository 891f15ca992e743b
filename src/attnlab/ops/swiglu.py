"""SwiGLU, ``silu(a) ⊙ b`` for ``u = [a | b]`` split on the last dim: the gated MLP's activation.

In PyTorch ops the forward is two passes over the hidden activations and autograd's backward four
and a concatenation (the two halves of the up projection's gradient joined), each a memory-bound pass:
about a fifth of a training step of the ledger's text models. On the CPU in float32 it runs as one
compiled pass each way (:func:`attnlab.ops.native.swiglu`, ``csrc/swiglu.c``); other dtypes and
devices, and machines without the compiled kernels, run the PyTorch ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import native


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u):
        u = u.contiguous()
        ctx.save_for_backward(u)
        return native.swiglu(u)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return native.swiglu_backward(u, g.contiguous())


def compiled(u: torch.Tensor) -> bool:
    """Whether :func:`swiglu` runs ``u`` in the compiled kernel (float32 on the CPU, where it is available)."""
    return native.runs(u)


def swiglu(u: torch.Tensor) -> torch.Tensor:
    """``silu(a) ⊙ b`` for ``a, b = u.chunk(2, -1)``: ``[..., 2h]`` → ``[..., h]``, differentiable."""
    if not isinstance(u, torch.Tensor) or u.ndim < 1 or u.shape[-1] % 2:
        raise ValueError(f"u must be a tensor whose last dim is even ([a | b]), got shape "
                         f"{tuple(getattr(u, 'shape', ()))}")
    if compiled(u) and u.numel():
        return _SwiGLU.apply(u)
    a, b = u.chunk(2, -1)
    return F.silu(a) * b
