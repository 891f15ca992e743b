"""Key–value overlap (post 11320): how much of v is predictable from k.

When keys and values come from the same source (``K = V``, or a shared projection), a memory that
maps keys to values "predicts itself". Two measures over the token axis:

- ``r2``: the fraction of v's variance explained by a least-squares linear map from k (with an
  intercept); 1 when v is a linear function of k.
- ``cka``: linear centred kernel alignment (Kornblith et al. 2019), ``‖K̄ᵀV̄‖²_F / (‖K̄ᵀK̄‖_F ‖V̄ᵀV̄‖_F)``,
  invariant to rotations and scalings of either side.
"""

from __future__ import annotations

import torch

from ..checks import check_tensor


def _flat(name, x):
    check_tensor(name, x, None)
    if x.ndim < 2:
        raise ValueError(f"{name} must be [..., n, d] (tokens by features), got shape {tuple(x.shape)}")
    return x.double()


def kv_overlap(k: torch.Tensor, v: torch.Tensor) -> dict[str, float]:
    """``k [n, d_k]``, ``v [n, d_v]`` (or ``[..., n, d]``, flattened over the leading dims)."""
    k, v = _flat("k", k), _flat("v", v)
    k, v = k.reshape(-1, k.shape[-1]), v.reshape(-1, v.shape[-1])
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"k and v must have the same number of tokens, got {k.shape[0]} and {v.shape[0]}")
    if k.shape[0] <= k.shape[1] + 1:
        raise ValueError(f"need more tokens ({k.shape[0]}) than key features + 1 ({k.shape[1] + 1}) for a regression")
    kc, vc = k - k.mean(0), v - v.mean(0)
    coef = torch.linalg.lstsq(kc, vc).solution
    resid = vc - kc @ coef
    tot = vc.pow(2).sum()
    r2 = float(1 - resid.pow(2).sum() / tot.clamp_min(1e-300))
    cka = float((kc.T @ vc).pow(2).sum() / ((kc.T @ kc).norm() * (vc.T @ vc).norm()).clamp_min(1e-300))
    return {"r2": r2, "cka": cka}
