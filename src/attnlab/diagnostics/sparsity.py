"""ℓ1/ℓ2 sparsity of vectors and attention rows (post 9889, claim C1) and the Hoyer measure.

``S(x) = E|x| / sqrt(E x²) = ‖x‖₁ / (√n ‖x‖₂)`` in ``(0, 1]``: 1 for a constant row, ``1/√n`` for
a one-hot row; smaller is sparser. Works on raw, unnormalised and signed matrices alike.
Hoyer (2004): ``(√n − ‖x‖₁/‖x‖₂) / (√n − 1)`` in ``[0, 1]``, larger is sparser.
"""

from __future__ import annotations

import torch

from ..checks import check_tensor


def _counted(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The entries of ``x`` that count (``mask``, default all), as a bool tensor of ``x``'s shape."""
    return torch.ones_like(x, dtype=torch.bool) if mask is None else torch.as_tensor(mask, dtype=torch.bool).expand_as(x)


def l1_l2_sparsity(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``S`` over the last dim, counting only ``mask``-ed entries (default all). All-zero rows give NaN-free 0."""
    check_tensor("x", x, None)
    xf = x.double()
    valid = _counted(xf, mask)
    xf = xf.masked_fill(~valid, 0.0)
    n = valid.sum(-1).double().clamp_min(1)
    l1, l2 = xf.abs().sum(-1), xf.pow(2).sum(-1).sqrt()
    return torch.where(l2 > 0, l1 / (n.sqrt() * l2.clamp_min(1e-300)), torch.zeros_like(l1))


def hoyer(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Hoyer sparsity over the last dim, in ``[0, 1]``: ``0`` for a constant row, ``1`` for one-hot.

    A row with no mass (all zero where counted) concentrates on nothing: its Hoyer sparsity is 0.
    """
    S = l1_l2_sparsity(x, mask)
    valid = _counted(x, mask)
    n = valid.sum(-1).double()
    has_mass = (x.double().abs() * valid).sum(-1) > 0
    sq = n.sqrt()
    ratio = S * sq  # ‖x‖₁/‖x‖₂
    h = ((sq - ratio) / (sq - 1).clamp_min(1e-300)).clamp(0.0, 1.0)  # rounding must not leave [0, 1]
    return torch.where((n > 1) & has_mass, h, torch.zeros_like(S))


