"""Rotary position embedding (Su et al. 2021, arXiv 2104.09864), rotate-half convention.

"No position encoding" (NoPE) is simply not calling :func:`rope`.
"""

from __future__ import annotations

import torch

from ..checks import check_tensor


def rope(x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0) -> torch.Tensor:
    """Rotate ``x [b, t, h, d]`` by position; ``positions`` is ``[t]`` or ``[b, t]`` (default ``0..t-1``).

    Pairs ``(x[..., i], x[..., i + d/2])`` rotate by angle ``pos · base^(-2i/d)``, the layout of
    GPT-NeoX and Llama, so ``rope(q, m)·rope(k, n)`` depends on ``m - n`` only.
    """
    check_tensor("x", x, 4, "[batch, seq, heads, dim]")
    b, t, h, d = x.shape
    if d % 2:
        raise ValueError(f"x's head dim must be even for rope, got {d}")
    if base <= 0:
        raise ValueError(f"base must be positive, got {base}")
    if positions is None:
        positions = torch.arange(t, device=x.device)
    positions = torch.as_tensor(positions, device=x.device)
    if positions.shape not in ((t,), (b, t)):
        raise ValueError(f"positions must have shape [{t}] or [{b}, {t}], got {tuple(positions.shape)}")
    inv_freq = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float64) / d)  # [d/2]
    ang = positions.to(torch.float64)[..., None] * inv_freq  # [t, d/2] or [b, t, d/2]
    if ang.ndim == 2:
        ang = ang[None]
    cos = torch.cos(ang).to(torch.float32)[:, :, None, :]  # [b|1, t, 1, d/2]
    sin = torch.sin(ang).to(torch.float32)[:, :, None, :]
    xf = x.float()
    x1, x2 = xf[..., : d // 2], xf[..., d // 2 :]
    out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    return out.to(x.dtype)
