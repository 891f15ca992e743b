"""Noise-robustness probe (post 9593, claims R1–R3): perturb the scores of given q, k, v with i.i.d. noise.

``‖õ − o‖ / ‖o‖`` where ``o`` is softmax attention and ``õ`` the same with ``s_ij + ε_ij`` scores.
The laws and their parameters are those of :mod:`attnlab.theory.noise`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..checks import check_qkv
from ..ops.masks import build_mask
from ..theory.noise import check_law, sample_noise


def noise_probe(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, law: str = "gaussian", scale: float = 1.0,
                mask: str = "causal", prefix_len=None, samples: int = 8, seed: int = 0) -> dict:
    """Relative output error under score noise, per sample: ``{"rel_error", "rel_error_std", "abs_rms"}``.

    ``q, k, v [b, t, h, d]``. Noise is drawn per score entry (masked entries stay masked).
    """
    check_qkv(q, k, v)
    check_law(law)
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    b, t, h, d = q.shape
    allowed = build_mask(mask, t, batch=b, n_heads=h, prefix_len=prefix_len).expand(b, h, t, t)
    # float64 throughout, so that zero noise gives zero error to the last digit
    logits = torch.einsum("bqhd,bkhd->bhqk", q.double(), k.double()) * d**-0.5
    logits = logits.masked_fill(~allowed, float("-inf"))
    P = torch.softmax(logits, -1)
    vv = v.double().transpose(1, 2)  # [b, h, t, d]
    o = P @ vv
    rng = np.random.default_rng(seed)
    rels, abs_ = [], []
    for _ in range(samples):
        eps = torch.from_numpy(sample_noise(rng, law, scale, tuple(P.shape)))
        Pn = torch.softmax((logits + eps).masked_fill(~allowed, float("-inf")), -1)
        on = Pn @ vv
        rels.append(float((on - o).norm() / o.norm().clamp_min(1e-300)))
        abs_.append(float((on - o).pow(2).sum(-1).mean().sqrt()))
    return {"rel_error": float(np.mean(rels)), "rel_error_std": float(np.std(rels)), "abs_rms": float(np.mean(abs_))}
