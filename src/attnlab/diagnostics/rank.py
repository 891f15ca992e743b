"""Rank of attention matrices (post 9529/9547: the low-rank bottleneck, claim D2; claim I5).

Matrices are ``[..., n, m]``; batch and head dims are kept.
"""

from __future__ import annotations

import torch

from ..checks import check_tensor


def singular_values(A: torch.Tensor) -> torch.Tensor:
    """Singular values ``[..., min(n, m)]``, descending, computed in float64."""
    check_tensor("A", A, None)
    if A.ndim < 2:
        raise ValueError(f"A must have at least 2 dimensions [..., n, m], got shape {tuple(A.shape)}")
    return torch.linalg.svdvals(A.double())


def numerical_rank(A: torch.Tensor, rtol: float | None = None) -> torch.Tensor:
    """Number of singular values above ``rtol · σ_max``.

    Default ``rtol = max(n, m) · eps(float64)``, NumPy's ``matrix_rank`` rule; pass a larger
    ``rtol`` (e.g. 1e-6 for float32 inputs) to ignore noise at the input's precision.
    """
    s = singular_values(A)
    n, m = A.shape[-2:]
    rtol = max(n, m) * torch.finfo(torch.float64).eps if rtol is None else float(rtol)
    return (s > rtol * s[..., :1]).sum(-1)


def effective_rank(A: torch.Tensor) -> torch.Tensor:
    """Roy & Vetterli (2007) effective rank: ``exp`` of the entropy of ``σ / Σσ``."""
    s = singular_values(A)
    p = s / s.sum(-1, keepdim=True).clamp_min(1e-300)
    H = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
    return torch.exp(H)
