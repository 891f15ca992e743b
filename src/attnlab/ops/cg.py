"""Conjugate gradient for batched symmetric positive-definite systems, given only ``x ↦ A x``.

MesaNet's CG variant (arXiv 2506.05233) never forms the per-token matrices ``H_t + Λ``: within a chunk
``H_t x`` is one product with the chunk's starting state plus an intra-chunk attention-like term,
so a fixed number of CG steps costs matmuls over all tokens at once.

Started from ``x = 0``, ``k`` steps return the minimiser of the ``A``-norm error over the Krylov space
``span{b, A b, …, A^{k−1} b}``: exact after ``d`` steps in exact arithmetic, and a differentiable,
fixed-cost approximation before. A system already solved (``r = 0``, e.g. the zero query of a padded
token) stops moving instead of dividing 0 by 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # where(den > 0, num / den, 0) with a denominator that is never 0, so that neither the value nor
    # the gradient of the unused branch can be NaN or Inf
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def conjugate_gradient(apply_a: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, steps: int,
                       x0: torch.Tensor | None = None) -> torch.Tensor:
    """``steps`` CG iterations for ``A x = b``; vectors on the last dim of ``b``, any batch dims before."""
    x = torch.zeros_like(b) if x0 is None else x0
    r = b - apply_a(x) if x0 is not None else b
    p, rr = r, (r * r).sum(-1)
    for _ in range(steps):
        ap = apply_a(p)
        alpha = _safe_ratio(rr, (p * ap).sum(-1))[..., None]
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = (r * r).sum(-1)
        p = r + _safe_ratio(rr_new, rr)[..., None] * p
        rr = rr_new
    return x
