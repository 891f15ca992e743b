"""The chunk layout shared by every chunkwise op.

Per-token tensors ``[b, t, h, ...]`` become ``[b, h, n, C, ...]``; the tail is zero-padded, which is
neutral for every op here (k = v = β = 0 adds nothing, g = 0 decays nothing). A sequence shorter
than a chunk is one chunk of its own length, so no padding work is done.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .precision import acc


def chunk_length(chunk_size: int, t: int) -> int:
    return max(1, min(chunk_size, t))


def to_chunks(x: torch.Tensor, C: int) -> torch.Tensor:
    """``[b, t, h, *rest]`` (rest empty or one dim) → ``[b, h, n, C, *rest]`` in the accumulation dtype.

    Contiguous: the batched matmuls on a strided view of the input ran slower than one copy followed
    by dense products (``attnlab bench ops``: linear attention about 5% faster at t = 4096).
    """
    b, t, h = x.shape[:3]
    pad = (-t) % C
    x = acc(x).transpose(1, 2)
    if pad:
        x = F.pad(x, (0, 0, 0, pad)) if x.ndim == 4 else F.pad(x, (0, pad))
    return x.reshape(b, h, (t + pad) // C, C, *x.shape[3:]).contiguous()


def from_chunks(o: torch.Tensor, t: int) -> torch.Tensor:
    """``[b, h, n, C, d]`` → ``[b, t, h, d]`` (the padded tail dropped)."""
    b, h, n, C, d = o.shape
    return o.reshape(b, h, n * C, d)[:, :, :t].transpose(1, 2)
