"""Entropy of attention rows (post 9593, claims I1–I5).

Rows are the last dim of ``[..., n]`` (e.g. ``[b, h, t_q, t_k]``). Masked entries are zeros of a
row-stochastic matrix (or pass ``mask``); the bound for a row is ``[0, log n_valid]``.
"""

from __future__ import annotations

import math

import torch

from ..checks import check_tensor


def _valid(p: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(p, dtype=torch.bool)
    mask = torch.as_tensor(mask, dtype=torch.bool, device=p.device)
    try:
        return mask.expand_as(p)
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to p {tuple(p.shape)}") from None


def row_entropy(p: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Entropy in nats of each row of a probability matrix ``p [..., n]`` (``0 log 0 = 0``).

    Rows must be non-negative and sum to 1 over the valid entries (checked, tolerance 1e-3).
    """
    check_tensor("p", p, None)
    valid = _valid(p, mask)
    pf = p.double().masked_fill(~valid, 0.0)
    if bool((pf < 0).any()):
        raise ValueError("p must be non-negative (a probability matrix); use diagnostics.sparsity for raw matrices")
    sums = pf.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        raise ValueError(f"p's rows must sum to 1 over valid entries; got sums in [{sums.min():.4g}, {sums.max():.4g}]")
    return -(pf * torch.log(pf.clamp_min(1e-300))).sum(-1)


def normalized_entropy(p: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Row entropy divided by ``log n_valid`` (rows with one valid entry count as 0)."""
    H = row_entropy(p, mask)
    n_valid = _valid(p, mask).sum(-1).double()
    return torch.where(n_valid > 1, H / torch.log(n_valid.clamp_min(2)), torch.zeros_like(H))


def max_entropy(n: int) -> float:
    return math.log(n)
