"""MesaNet (von Oswald et al. 2025, arXiv 2506.05233): the exact optimum of an online ridge regression.

With decay ``γ_t = exp(g_t)`` and per-token strength ``β_t``::

    H_t = γ_t H_{t-1} + β_t k_t k_tᵀ,   G_t = γ_t G_{t-1} + β_t k_t v_tᵀ,   o_t = G_tᵀ (H_t + Λ)⁻¹ q_t

with ``Λ = diag(λ)`` per head. ``o_t`` is the prediction at ``q_t`` of the linear model that minimises
the discounted squared loss over the past, exactly (not one gradient step as in the delta rule).
With ``K = V``, ``G = H`` and ``o_t → q_t`` as ``λ → 0``: TTT on "predict yourself" is degenerate
(claim S3).

``recurrent`` solves one ``d_k × d_k`` system per token in a loop. ``chunk`` forms every ``H_t`` of a
chunk at once (``O(C d_k²)`` memory) and solves them in one batched call; only the state hand-off
between chunks loops.

``solver="cg"`` replaces the exact solve by ``cg_steps`` conjugate-gradient steps from ``x = 0``, as
the paper does for speed: the chunk form then never builds ``H_t``. With ``H₀`` and ``G₀`` the state
entering a chunk, ``γ`` the in-chunk decay and ``D_ij = exp(G_i − G_j) β_j`` (``j ≤ i``)::

    (H_t + Λ) x_t = γ_t H₀ x_t + Σ_{j≤t} D_tj k_j (k_jᵀ x_t) + λ ⊙ x_t,   o_t = γ_t G₀ᵀ x_t + Σ_{j≤t} D_tj v_j (k_jᵀ x_t)

— batched matmuls over every token of every chunk at once, ``O(t·d + (t/C)·d²)`` memory. ``d_k``
steps give the exact answer up to rounding; fewer give the Krylov approximation (:mod:`attnlab.ops.cg`).
"""

from __future__ import annotations

import torch

from ..checks import check_choice, check_positive_int, check_qkv, check_step_qkv, check_tensor
from .cg import conjugate_gradient
from .chunking import chunk_length, from_chunks, to_chunks
from .decay import MODES, check_log_decay
from .delta import check_beta
from .precision import acc


def _check_lamb(lamb, h, dk):
    check_tensor("lamb", lamb, 2, "[heads, d_k]")
    if tuple(lamb.shape) != (h, dk):
        raise ValueError(f"lamb must have shape {(h, dk)} [heads, d_k], got {tuple(lamb.shape)}")
    if bool((lamb <= 0).any()):
        raise ValueError("lamb (the ridge regulariser Λ) must be positive so that H + Λ is invertible")
    return lamb


def _init(initial_state, b, h, dk, dv, device, dtype=torch.float32):
    if initial_state is None:
        z = dict(device=device, dtype=dtype)
        return torch.zeros(b, h, dk, dk, **z), torch.zeros(b, h, dk, dv, **z)
    if not (isinstance(initial_state, tuple) and len(initial_state) == 2):
        raise TypeError("initial_state must be a tuple (H [b, h, d_k, d_k], G [b, h, d_k, d_v])")
    H, G = initial_state
    for name, x, shape in (("initial_state[0] (H)", H, (b, h, dk, dk)), ("initial_state[1] (G)", G, (b, h, dk, dv))):
        check_tensor(name, x, 4)
        if tuple(x.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    return acc(H), acc(G)


SOLVERS = ("exact", "cg")


def _solve(H, lamb, q, cg_steps):
    """``(H + diag(λ))⁻¹ q`` per token: exactly (``cg_steps`` None) or by CG on the explicit ``H``."""
    if cg_steps is None:
        return torch.linalg.solve(H + torch.diag_embed(lamb), q)
    return conjugate_gradient(lambda x: (H @ x[..., None])[..., 0] + lamb * x, q, cg_steps)


def _recurrent(q, k, v, g, beta, lamb, H, G, cg_steps=None):
    t = q.shape[1]
    lamb = acc(lamb)
    out = []
    for i in range(t):
        gam = acc(g[:, i]).exp()[..., None, None]
        kb = acc(k[:, i]) * acc(beta[:, i, :, None])
        H = gam * H + kb[..., :, None] * acc(k[:, i])[..., None, :]
        G = gam * G + kb[..., :, None] * acc(v[:, i])[..., None, :]
        x = _solve(H, lamb, acc(q[:, i]), cg_steps)
        out.append(torch.einsum("bhk,bhkv->bhv", x, G))
    return torch.stack(out, 1), H, G


def _chunk_layout(q, k, v, g, beta, C):
    """Chunked inputs, ``γ = exp(G)`` in-chunk decays, ``D_ij = exp(G_i − G_j) β_j`` (j ≤ i), and the
    keys weighted for the hand-off ``K̃ = exp(G_C − G) β ⊙ K``."""
    q, k, v, beta = to_chunks(q, C), to_chunks(k, C), to_chunks(v, C), to_chunks(beta, C)
    Gc = to_chunks(g, C).cumsum(-1)
    tril = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    D = (Gc[..., :, None] - Gc[..., None, :]).masked_fill(~tril, float("-inf")).exp() * beta[..., None, :]
    kend = k * ((Gc[..., -1:] - Gc).exp() * beta)[..., None]
    return q, k, v, D, Gc.exp(), kend


def _hand_off(H, G, gam, kend, k, v, i):
    """The states entering chunk ``i + 1`` from those entering chunk ``i``."""
    end = gam[:, :, i, -1, None, None]
    kt = kend[:, :, i].transpose(-1, -2)
    return end * H + kt @ k[:, :, i], end * G + kt @ v[:, :, i]


def _chunk(q, k, v, g, beta, lamb, C, H, G):
    t = q.shape[1]
    q, k, v, D, gam, kend = _chunk_layout(q, k, v, g, beta, chunk_length(C, t))
    Lam = torch.diag_embed(acc(lamb))[:, None]  # [h, 1, dk, dk]
    outs = []
    for i in range(q.shape[2]):
        ki, qi, vi, Di = k[:, :, i], q[:, :, i], v[:, :, i], D[:, :, i]
        Ht = gam[:, :, i, :, None, None] * H[:, :, None] + torch.einsum("bhij,bhjk,bhjl->bhikl", Di, ki, ki)
        x = torch.linalg.solve(Ht + Lam, qi)  # [b, h, C, dk]
        outs.append(gam[:, :, i, :, None] * (x @ G) + ((x @ ki.transpose(-1, -2)) * Di) @ vi)
        H, G = _hand_off(H, G, gam, kend, k, v, i)
    return from_chunks(torch.stack(outs, 2), t), H, G


def _chunk_cg(q, k, v, g, beta, lamb, C, H, G, steps):
    t = q.shape[1]
    q, k, v, D, gam, kend = _chunk_layout(q, k, v, g, beta, chunk_length(C, t))
    H0, G0 = [], []  # the states entering each chunk: the only sequential part
    for i in range(q.shape[2]):
        H0.append(H)
        G0.append(G)
        H, G = _hand_off(H, G, gam, kend, k, v, i)
    # rows x_t ↦ (H₀ x_t)ᵀ, as the recurrent form multiplies (H₀ is symmetric when built from β ≥ 0;
    # a caller's initial state might not be)
    H0T, G0 = torch.stack(H0, 2).transpose(-1, -2), torch.stack(G0, 2)  # [b, h, n, d_k, d_k | d_v]
    lamb, kT, gam = acc(lamb)[:, None, None, :], k.transpose(-1, -2), gam[..., None]

    def apply_a(x):  # (H_t + Λ) x_t for every token of every chunk at once
        return (x * gam) @ H0T + ((x @ kT) * D) @ k + lamb * x

    x = conjugate_gradient(apply_a, q, steps)
    o = (x * gam) @ G0 + ((x @ kT) * D) @ v
    return from_chunks(o, t), H, G


def mesa_net(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None,
    beta: torch.Tensor,
    lamb: torch.Tensor,
    *,
    mode: str = "chunk",
    chunk_size: int = 64,
    initial_state: tuple[torch.Tensor, torch.Tensor] | None = None,
    output_final_state: bool = False,
    solver: str = "exact",
    cg_steps: int = 30,
):
    """MesaNet, exact (``solver="exact"``) or with ``cg_steps`` conjugate-gradient steps (``solver="cg"``).

    ``q, k [b, t, h, d_k]``, ``v [b, t, h, d_v]``, ``g, beta [b, t, h]``, ``lamb [h, d_k]``. No query
    scale (as in the paper: the solve sets the scale). Returns ``o`` and, with ``output_final_state``,
    the state ``(H, G)``. The CG steps are the same in both modes, so ``chunk`` and ``recurrent`` agree
    for every ``cg_steps``.
    """
    b, t, h, dk, dv = check_qkv(q, k, v)
    check_choice("mode", mode, MODES)
    check_positive_int("chunk_size", chunk_size)
    check_choice("solver", solver, SOLVERS)
    steps = check_positive_int("cg_steps", cg_steps) if solver == "cg" else None
    g = q.new_zeros(b, t, h) if g is None else check_log_decay(g, b, t, h)
    beta = check_beta(beta, b, t, h)
    if bool((beta < 0).any()):
        raise ValueError("beta must be non-negative for MesaNet (H must stay positive semi-definite)")
    lamb = _check_lamb(lamb, h, dk)
    H, G = _init(initial_state, b, h, dk, dv, q.device, acc(q).dtype)
    if mode == "recurrent":
        o, H, G = _recurrent(q, k, v, g, beta, lamb, H, G, steps)
    elif steps is None:
        o, H, G = _chunk(q, k, v, g, beta, lamb, chunk_size, H, G)
    else:
        o, H, G = _chunk_cg(q, k, v, g, beta, lamb, chunk_size, H, G, steps)
    o = o.to(v.dtype)
    return (o, (H, G)) if output_final_state else o


def mesa_net_step(q_t, k_t, v_t, g_t, beta_t, lamb, state, *, solver="exact", cg_steps=30):
    """One decoding step on ``[b, h, d]`` tokens; ``state = (H, G)`` or None. Returns ``(o_t, (H, G))``."""
    b, h, dk, dv = check_step_qkv(q_t, k_t, v_t)
    check_choice("solver", solver, SOLVERS)
    steps = check_positive_int("cg_steps", cg_steps) if solver == "cg" else None
    beta_t = check_tensor("beta_t", beta_t, 2, "[batch, heads]")
    lamb = _check_lamb(lamb, h, dk)
    H, G = _init(state, b, h, dk, dv, q_t.device, acc(q_t).dtype)
    g_t = q_t.new_zeros(b, h) if g_t is None else g_t
    o, H, G = _recurrent(q_t[:, None], k_t[:, None], v_t[:, None], g_t[:, None], beta_t[:, None], lamb, H, G,
                          steps)
    return o[:, 0].to(v_t.dtype), (H, G)
