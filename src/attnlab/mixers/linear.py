"""Linear-attention mixers: plain linear attention with a feature map, RetNet's fixed decay per
head, and a data-dependent decay (simple GLA). Their ``attention_matrix`` is the implicit one."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.decay import decay_attention_matrix
from ..ops.featuremaps import NON_NEGATIVE, get_feature_map
from ..ops.linear import linear_attention, retnet_decay
from .base import Cache, Mixer, register_mixer


class _LinearFamily(Mixer):
    """Shared machinery: ``o_t = Σ_{j≤t} φ(q_t)·φ(k_j) · decay(j→t) · v_j`` (optionally row-normalised).

    Args:
        feature_map: ``"identity"`` (default), ``"relu"``, ``"elu1"``, ``"exp"``, ``"softplus"``, ``"based"``.
        normalize: divide by ``φ(q_t)·Σ φ(k_j)`` (needs a non-negative feature map).
        chunk_size: chunk length of the chunkwise form (default 64).
    """

    keeps_cache = True  # a KV cache or a recurrent state, filled in mix

    def __init__(self, d_model, n_heads, *, feature_map="identity", normalize=False, chunk_size=64, **kw):
        super().__init__(d_model, n_heads, **kw)
        get_feature_map(feature_map)
        if normalize and feature_map not in NON_NEGATIVE:
            raise ValueError(f"normalize=True needs a non-negative feature_map, got {feature_map!r}")
        self.feature_map, self.normalize, self.chunk_size = feature_map, bool(normalize), int(chunk_size)

    def log_decay(self, x: torch.Tensor) -> torch.Tensor | None:
        """``g [b, t, h]`` (≤ 0) or None for no decay."""
        return None

    def features(self, x: torch.Tensor, cache: Cache | None = None) -> dict[str, torch.Tensor]:
        f = self.project(x, cache)
        f["g"] = self.log_decay(x)
        return f

    def mix(self, f, cache, prefix_len=None):
        if prefix_len is not None:
            raise ValueError(f"prefix_len: the {self.name!r} mixer is causal and cannot look ahead into a prefix")
        o, state = linear_attention(
            f["q"],
            f["k"],
            f["v"],
            feature_map=self.feature_map,
            normalize=self.normalize,
            g=f["g"],
            chunk_size=self.chunk_size,
            initial_state=None if cache is None else cache.get("state"),
            output_final_state=True,
        )
        if cache is not None:
            cache["state"] = state
        return o

    def matrix(self, f, prefix_len=None):
        if prefix_len is not None:
            raise ValueError(f"prefix_len: the {self.name!r} mixer is causal and cannot look ahead into a prefix")
        phi = get_feature_map(self.feature_map)
        d = f["q"].shape[-1]
        A = decay_attention_matrix(phi(f["q"].float()), phi(f["k"].float()), f["g"], scale=d**-0.5)
        if self.normalize:
            # same clamp as the op, so that A @ v reproduces the output exactly
            A = A / A.sum(-1, keepdim=True).clamp_min(1e-6 * d**-0.5)
        return A

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, feature_map={self.feature_map!r}, normalize={self.normalize}"


@register_mixer("linear_attn")
class LinearAttention(_LinearFamily):
    """Linear attention (Katharopoulos et al. 2020, arXiv 2006.16236): no decay."""


@register_mixer("retnet")
class RetNet(_LinearFamily):
    """Retention (Sun et al. 2023, arXiv 2307.08621): a fixed decay ``γ_h = 1 − 2^(−5−h)`` per head."""

    def __init__(self, d_model, n_heads, **kw):
        super().__init__(d_model, n_heads, **kw)
        self.register_buffer("log_gamma", retnet_decay(n_heads).log().float(), persistent=False)

    def log_decay(self, x):
        return self.log_gamma.to(x.device).expand(x.shape[0], x.shape[1], self.n_heads)


@register_mixer("gla")
class SimpleGLA(_LinearFamily):
    """Data-dependent decay per token and head (simple GLA, as in flash-linear-attention):
    ``g_t = logsigmoid(W_g x_t + b) / gate_normalizer`` with ``gate_normalizer = 16``."""

    def __init__(self, d_model, n_heads, *, gate_normalizer: float = 16.0, **kw):
        super().__init__(d_model, n_heads, **kw)
        self.g_proj = nn.Linear(d_model, n_heads)
        self.gate_normalizer = float(gate_normalizer)

    def log_decay(self, x):
        return F.logsigmoid(self.g_proj(x).float()) / self.gate_normalizer
