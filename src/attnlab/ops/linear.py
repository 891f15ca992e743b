"""Linear attention with feature maps, and its decayed variants (RetNet, simple GLA).

Normalised linear attention ``o_t = φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t`` with ``z_t = Σ φ(k_i)`` is run as
one pass of the decay engine on ``[v, 1]``: the extra value column carries the normaliser, so the
chunk and recurrent forms share their code with the unnormalised case.
"""

from __future__ import annotations

import torch

from ..checks import check_qkv, check_tensor
from .decay import decay_linear_attention, decay_linear_attention_step
from .featuremaps import NON_NEGATIVE, get_feature_map
from .precision import acc

_EPS = 1e-6


def _check_normalize(fmap: str, normalize: bool) -> None:
    if normalize and fmap not in NON_NEGATIVE:
        raise ValueError(
            f"normalize=True needs a non-negative feature_map ({', '.join(sorted(NON_NEGATIVE))}); "
            f"{fmap!r} can make the normaliser φ(q)·Σφ(k) zero or negative"
        )


def _split_state(S_aug: torch.Tensor, dv: int):
    return S_aug[..., :dv], S_aug[..., dv]


def _join_state(initial_state, b, h, dk, dv):
    if initial_state is None:
        return None
    if not (isinstance(initial_state, tuple) and len(initial_state) == 2):
        raise TypeError("initial_state must be a tuple (S [b, h, d_k, d_v], z [b, h, d_k]) when normalize=True")
    S, z = initial_state
    check_tensor("initial_state[1]", z, 3, "[batch, heads, d_k]")
    if tuple(z.shape) != (b, h, dk):
        raise ValueError(f"initial_state[1] (z) must have shape {(b, h, dk)}, got {tuple(z.shape)}")
    return torch.cat([acc(S), acc(z)[..., None]], dim=-1)


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: str = "identity",
    normalize: bool = False,
    g: torch.Tensor | None = None,
    mode: str = "chunk",
    chunk_size: int = 64,
    scale: float | None = None,
    initial_state=None,
    output_final_state: bool = False,
    backend: str = "auto",
):
    """Causal linear attention on ``q, k [b, t, h, d]``, ``v [b, t, h, d_v]``.

    ``φ`` (``feature_map``) is applied to q and k, then ``φ(q)`` is multiplied by ``scale``
    (default ``d ** -0.5``, ``d`` the input head dim). ``g [b, t, h]`` is an optional log-decay.
    With ``normalize=True`` the state is a pair ``(S [b, h, d_φ, d_v], z [b, h, d_φ])``; the
    normaliser is clamped below at 1e-6 (a relu map can make it exactly 0). ``backend`` as for
    :func:`attnlab.ops.decay_linear_attention`.
    """
    b, t, h, d, dv = check_qkv(q, k, v)
    phi = get_feature_map(feature_map)
    _check_normalize(feature_map, normalize)
    scale = d**-0.5 if scale is None else float(scale)
    fq, fk = phi(acc(q)), phi(acc(k))
    dphi = fq.shape[-1]
    common = dict(mode=mode, chunk_size=chunk_size, scale=scale, output_final_state=True, backend=backend)
    if not normalize:
        o, S = decay_linear_attention(fq, fk, acc(v), g, initial_state=initial_state, **common)
        o = o.to(v.dtype)
        return (o, S) if output_final_state else o
    v_aug = torch.cat([acc(v), torch.ones_like(acc(v)[..., :1])], dim=-1)
    init = _join_state(initial_state, b, h, dphi, dv)
    o_aug, S_aug = decay_linear_attention(fq, fk, v_aug, g, initial_state=init, **common)
    o = (o_aug[..., :dv] / o_aug[..., dv:].clamp_min(_EPS * scale)).to(v.dtype)
    return (o, _split_state(S_aug, dv)) if output_final_state else o


def linear_attention_step(q_t, k_t, v_t, state=None, g_t=None, *, feature_map="identity", normalize=False, scale=None):
    """One decoding step of :func:`linear_attention`; tensors ``[b, h, d]``. Returns ``(o_t, state)``."""
    _check_normalize(feature_map, normalize)
    phi = get_feature_map(feature_map)
    d = q_t.shape[-1]
    scale = d**-0.5 if scale is None else float(scale)
    fq, fk = phi(acc(q_t)), phi(acc(k_t))
    if not normalize:
        o, S = decay_linear_attention_step(fq, fk, acc(v_t), state, g_t, scale=scale)
        return o.to(v_t.dtype), S
    b, h, dv = v_t.shape
    v_aug = torch.cat([acc(v_t), torch.ones_like(acc(v_t)[..., :1])], dim=-1)
    init = _join_state(state, b, h, fq.shape[-1], dv)
    o_aug, S_aug = decay_linear_attention_step(fq, fk, v_aug, init, g_t, scale=scale)
    o = o_aug[..., :dv] / o_aug[..., dv:].clamp_min(_EPS * scale)
    return o.to(v_t.dtype), _split_state(S_aug, dv)


def retnet_decay(n_heads: int) -> torch.Tensor:
    """RetNet's fixed per-head decays ``γ_h = 1 − 2^(−5−h)`` (Sun et al. 2023, eq. 8)."""
    return 1.0 - 2.0 ** (-5.0 - torch.arange(n_heads, dtype=torch.float64))


def retention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    decay: torch.Tensor | None = None,
    **kwargs,
):
    """Linear attention with a fixed decay per head ``γ_h ∈ (0, 1]`` (RetNet); ``decay [h]``.

    Default decays are RetNet's. Keywords as :func:`decay_linear_attention`.
    """
    b, t, h, _, _ = check_qkv(q, k, v)
    gamma = retnet_decay(h) if decay is None else torch.as_tensor(decay, dtype=torch.float64)
    if gamma.shape != (h,):
        raise ValueError(f"decay must have one entry per head ({h}), got shape {tuple(gamma.shape)}")
    if bool((gamma <= 0).any()) or bool((gamma > 1).any()):
        raise ValueError(f"decay entries must lie in (0, 1], got {gamma.tolist()}")
    g = gamma.log().to(device=q.device, dtype=acc(q).dtype).expand(b, t, h)
    return decay_linear_attention(q, k, v, g, **kwargs)


def simple_gla(q, k, v, g, **kwargs):
    """Linear attention with a data-dependent log-decay ``g [b, t, h]`` per token and head."""
    if g is None:
        raise ValueError("g must be a log-decay tensor [batch, seq, heads]; use linear_attention for no decay")
    return decay_linear_attention(q, k, v, g, **kwargs)
