"""Rotary position embedding (Su et al. 2021, arXiv 2104.09864), rotate-half convention.

"No position encoding" (NoPE) is simply not calling :func:`rope`.

The rotation is its own autograd function: its backward is the rotation by the opposite angle, two fused
passes per half, where autograd of the four products, two sums and a concatenation kept every piece and
zero-filled the halves' gradients. The angles of positions ``start … start + t − 1`` are cached.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..checks import check_tensor


def _angles(positions: torch.Tensor, d: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = base ** (-torch.arange(0, d, 2, device=positions.device, dtype=torch.float64) / d)  # [d/2]
    ang = positions.to(torch.float64)[..., None] * inv_freq  # [t, d/2] or [b, t, d/2]
    if ang.ndim == 2:
        ang = ang[None]
    return torch.cos(ang)[:, :, None, :], torch.sin(ang)[:, :, None, :]  # float64: cast where used


@lru_cache(maxsize=64)
def _angles_from(start: int, t: int, d: int, base: float, device: torch.device):
    return _angles(torch.arange(start, start + t, device=device), d, base)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``[x1 cos − x2 sin, x2 cos + x1 sin]`` over the halves of the last dim (``sin → −sin``: the inverse)."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    out = torch.empty_like(x)
    o1, o2 = out[..., :h], out[..., h:]
    torch.mul(x1, cos, out=o1)
    o1.addcmul_(x2, sin, value=-1.0)
    torch.mul(x2, cos, out=o2)
    o2.addcmul_(x1, sin)
    return out


class _Rope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin)

    @staticmethod
    def backward(ctx, g):
        cos, sin = ctx.saved_tensors
        return _rotate(g.contiguous(), cos, -sin), None, None


def rope(x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0, *, start: int = 0
         ) -> torch.Tensor:
    """Rotate ``x [b, t, h, d]`` by position; ``positions`` is ``[t]`` or ``[b, t]`` (default
    ``start … start + t − 1``).

    Pairs ``(x[..., i], x[..., i + d/2])`` rotate by angle ``pos · base^(-2i/d)``, the layout of
    GPT-NeoX and Llama, so ``rope(q, m)·rope(k, n)`` depends on ``m - n`` only. The rotation runs in
    float32 (float64 inputs: float64) and the result has ``x``'s dtype.
    """
    check_tensor("x", x, 4, "[batch, seq, heads, dim]")
    b, t, h, d = x.shape
    if d % 2:
        raise ValueError(f"x's head dim must be even for rope, got {d}")
    if base <= 0:
        raise ValueError(f"base must be positive, got {base}")
    if positions is None:
        if not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be a whole number ≥ 0, got {start!r}")
        cos, sin = _angles_from(start, t, d, float(base), x.device)
    else:
        positions = torch.as_tensor(positions, device=x.device)
        if positions.shape not in ((t,), (b, t)):
            raise ValueError(f"positions must have shape [{t}] or [{b}, {t}], got {tuple(positions.shape)}")
        cos, sin = _angles(positions, d, float(base))
    xf = x if x.dtype == torch.float64 else x.float()
    cos, sin = cos.to(xf.dtype), sin.to(xf.dtype)
    return _Rope.apply(xf.contiguous(), cos, sin).to(x.dtype)
