"""The one-token step shared by the decayed linear attentions and the delta rules.

With ``α_t = exp(g_t)`` (``g_t = None``: ``α = 1``)::

    decayed linear attention:  S_t = α_t S_{t-1} + k_t v_tᵀ
    (gated) delta rule:        S_t = α_t S_{t-1} + β_t k_t (v_t − (α_t S_{t-1})ᵀ k_t)ᵀ
    both:                      o_t = S_tᵀ (scale · q_t)

The delta rule writes the prediction error where linear attention writes the value; everything
else (decay, read-out, dtype policy, checks) is the same, so it is written once.
"""

from __future__ import annotations

import torch

from ..checks import check_state, check_step_qkv, check_tensor
from .precision import acc


def state_step(q_t, k_t, v_t, state, *, g_t=None, beta_t=None, scale=None):
    """``q_t, k_t [b, h, d_k]``, ``v_t [b, h, d_v]``, ``g_t, beta_t [b, h]`` or None, ``state [b, h, d_k, d_v]``
    or None (zeros) → ``(o_t [b, h, d_v]`` in ``v_t``'s dtype, ``new_state)``; ``beta_t`` None is linear
    attention's write, a tensor the delta rule's."""
    b, h, dk, dv = check_step_qkv(q_t, k_t, v_t)
    check_state("state", state, (b, h, dk, dv))
    scale = dk**-0.5 if scale is None else float(scale)
    S = acc(q_t).new_zeros(b, h, dk, dv) if state is None else acc(state)
    if g_t is not None:
        check_tensor("g_t", g_t, 2, "[batch, heads]")
        S = S * acc(g_t).exp()[..., None, None]
    k32 = acc(k_t)
    write = acc(v_t)
    if beta_t is not None:  # the delta rule: write β (v − Sᵀk) instead of v
        write = acc(beta_t)[..., None] * (write - torch.einsum("bhk,bhkv->bhv", k32, S))
    S = S + k32[..., :, None] * write[..., None, :]
    o = torch.einsum("bhk,bhkv->bhv", acc(q_t) * scale, S)
    return o.to(v_t.dtype), S
