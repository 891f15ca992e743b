"""Quadratic attention mixers: softmax (any mask, RoPE or NoPE) and the kernel attentions of
post 9889 (``relu2``, ``identity``)."""

from __future__ import annotations

import torch

from ..checks import check_choice
from ..ops.attention import KERNELS, attention, attention_probs
from ..ops.masks import MASKS
from ..ops.rope import rope
from .base import Cache, Mixer, register_mixer


class _QuadraticAttention(Mixer):
    """``a_ij ∝ f(q_i·k_j / √d)`` over keys allowed by ``mask``.

    Args:
        kernel: ``"exp"`` (softmax), ``"relu2"`` or ``"identity"``.
        mask: ``"causal"`` (default), ``"bidirectional"``, ``"prefix"`` (UniLM; pass ``prefix_len``
            to forward) or ``"fwd_bwd"`` (half the heads backward; post 9529).
        rope: rotary position embedding on q and k (default True); False is NoPE.
        rope_base: RoPE base (default 10000).
        normalize: divide rows by their sum (see :func:`attnlab.ops.attention`).
        score_scale: a fixed multiplier of the scores q·k/√d (a logit temperature 1/τ, default 1): unlike
            larger q, k weights it leaves the optimiser's relative step on them unchanged (claim I1).
    """

    keeps_cache = True  # a KV cache or a recurrent state, filled in mix

    default_kernel = "exp"
    sees_future = True

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        kernel: str | None = None,
        mask: str = "causal",
        rope: bool = True,
        rope_base: float = 10000.0,
        normalize: bool = True,
        score_scale: float = 1.0,
        **kw,
    ):
        super().__init__(d_model, n_heads, **kw)
        if not (isinstance(score_scale, (int, float)) and score_scale > 0 and score_scale < float("inf")):
            raise ValueError(f"score_scale must be a positive finite number, got {score_scale!r}")
        self.score_scale = float(score_scale)
        self.kernel = check_choice("kernel", kernel or self.default_kernel, KERNELS)
        self.mask = check_choice("mask", mask, MASKS)
        self.causal = mask == "causal"
        self.use_rope, self.rope_base, self.normalize = bool(rope), float(rope_base), bool(normalize)

    def features(self, x: torch.Tensor, cache: Cache | None = None) -> dict[str, torch.Tensor]:
        f = self.project(x, cache)
        if self.use_rope:
            start = 0 if cache is None else cache.get("offset", 0)
            f["q"], f["k"] = rope(f["q"], base=self.rope_base, start=start), rope(f["k"], base=self.rope_base, start=start)
        if self.score_scale != 1.0:  # scores are linear in q: scaling q scales every score
            f["q"] = f["q"] * self.score_scale
        return f

    def _opts(self, prefix_len):
        return dict(kernel=self.kernel, mask=self.mask, prefix_len=prefix_len, normalize=self.normalize)

    def mix(self, f, cache, prefix_len=None):
        q, k, v = f["q"], f["k"], f["v"]
        if cache is not None:
            if not self.causal:
                raise ValueError(f"a decoding cache needs mask='causal'; this mixer has mask={self.mask!r}")
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=1), torch.cat([cache["v"], v], dim=1)
            cache["k"], cache["v"] = k, v
            cache["offset"] = k.shape[1]
        return attention(q, k, v, **self._opts(prefix_len))

    def matrix(self, f, prefix_len=None):
        return attention_probs(f["q"], f["k"], **self._opts(prefix_len))

    def extra_repr(self) -> str:
        pos = "rope" if self.use_rope else "nope"
        scale = f", score_scale={self.score_scale:g}" if self.score_scale != 1.0 else ""
        return f"{super().extra_repr()}, kernel={self.kernel!r}, mask={self.mask!r}, {pos}{scale}"


@register_mixer("softmax")
class SoftmaxAttention(_QuadraticAttention):
    """Softmax attention (Vaswani et al. 2017), ``kernel="exp"``."""


@register_mixer("relu2_attn")
class Relu2Attention(_QuadraticAttention):
    """``a_ij ∝ relu(q_i·k_j)²`` (post 9889, "can attention concentrate?")."""

    default_kernel = "relu2"


@register_mixer("identity_attn")
class IdentityAttention(_QuadraticAttention):
    """``a_ij ∝ q_i·k_j`` (post 9889), ℓ1-normalised rows by default."""

    default_kernel = "identity"
