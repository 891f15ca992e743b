"""The delta rule and the gated delta rule (DeltaNet, Yang et al. 2024; Gated DeltaNet, Yang et al. 2025).

State ``S [b, h, d_k, d_v]``; with ``α_t = exp(g_t)`` (``g = None``: ``α = 1``)::

    S_t = α_t (I − β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ,   o_t = S_tᵀ (scale · q_t)

— one SGD step of test-time training on ``½‖Sᵀk_t − v_t‖²`` with learning rate ``β_t``, after a
decoupled weight decay ``α_t`` (post 11320; claims S1, S2).

``recurrent`` is the token loop (the reference). Float64 inputs compute in float64, others in
float32. ``chunk`` is the WY/UT form: with ``G`` the
in-chunk cumulative log-decay, ``γ = exp(G)``, per chunk::

    A = strict_lower(diag(β) (K Kᵀ ⊙ exp(G_i − G_j))),   T = (I + A)⁻¹ diag(β)
    W = T (γ ⊙ K),  U = T V,  V_new = U − W S,  O = (γ ⊙ Q) S + (Q Kᵀ ⊙ exp(G_i − G_j))_{j≤i} V_new
    S ← γ_C S + (K ⊙ exp(G_C − G))ᵀ V_new

``(I + A)`` is unit lower-triangular: its inverse comes from a blocked product formula over all
chunks at once (:mod:`attnlab.ops.triangular`). Everything but the state hand-off is batched over
chunks; the hand-off is a Python loop over chunks (``t / C`` iterations, two fused matmul-adds
each), after which ``O`` is again one batched product. The layout is chunk-major ``[n, b·h, C, d]``.
"""

from __future__ import annotations

import warnings

import torch

from ..checks import acc, all_finite, check_choice, check_positive_int, check_qkv, check_state, check_step_qkv, check_tensor
from . import native
from .chunking import chunk_length
from .decay import MODES, check_log_decay
from .fla_backend import fla_chunk, resolve_backend
from .triangular import unit_lower_inverse

# β‖k‖² beyond 2 makes (I − β k kᵀ) expansive along k: the state can grow geometrically.
CONTRACTIVE_LIMIT = 2.0


class DeltaRuleBlowUpWarning(RuntimeWarning):
    """The delta-rule recurrence is not contractive for these keys and β (it may blow up)."""


def check_beta(beta: torch.Tensor, b: int, t: int, h: int) -> torch.Tensor:
    check_tensor("beta", beta, 3, "[batch, seq, heads]")
    if tuple(beta.shape) != (b, t, h):
        raise ValueError(f"beta must have shape {(b, t, h)} [batch, seq, heads], got {tuple(beta.shape)}")
    return beta


def _check_stability(k: torch.Tensor, beta: torch.Tensor) -> None:
    with torch.no_grad():
        worst = float((acc(beta).abs() * acc(k).pow(2).sum(-1)).max()) if k.numel() else 0.0
    if worst > CONTRACTIVE_LIMIT:
        _warn_blow_up(worst)


def _check_stability_from_gram(kk: torch.Tensor, beta: torch.Tensor) -> None:
    """The chunk form has ‖k‖² for free on the diagonal of K Kᵀ."""
    if kk.numel():
        worst = float((kk.diagonal(dim1=-2, dim2=-1) * beta.abs()).max())
        if worst > CONTRACTIVE_LIMIT:
            _warn_blow_up(worst)


def _warn_blow_up(worst: float, stacklevel: int = 4) -> None:
    warnings.warn(
        f"delta rule: max β‖k‖² = {worst:.3g} > {CONTRACTIVE_LIMIT:g}, so I − β k kᵀ is expansive and the state "
        "can blow up; L2-normalise the keys (the mixers' default) or keep β in (0, 2/‖k‖²)",
        DeltaRuleBlowUpWarning,
        stacklevel=stacklevel,
    )


def _check_finite_output(o: torch.Tensor, S: torch.Tensor) -> None:
    if not all_finite(o, S):
        raise FloatingPointError(
            "delta rule produced NaN/Inf: the recurrence blew up (β‖k‖² > 2 makes it expansive); "
            "L2-normalise the keys or bound β"
        )


def _recurrent(q, k, v, beta, g, scale, initial_state):
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    S = acc(q).new_zeros(b, h, dk, dv)
    if initial_state is not None:
        S = S + acc(initial_state)
    q, k, v, beta = acc(q) * scale, acc(k), acc(v), acc(beta)
    out = []
    for i in range(t):
        if g is not None:
            S = S * acc(g[:, i]).exp()[..., None, None]
        k_i = k[:, i]
        err = v[:, i] - torch.einsum("bhk,bhkv->bhv", k_i, S)  # v_t − Sᵀ k_t
        S = S + beta[:, i, :, None, None] * k_i[..., :, None] * err[..., None, :]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, i], S))
    return torch.stack(out, dim=1), S


def _state_pass(W, U, k_endT, decay_end, S0):
    """The only sequential part: ``V_new,i = U_i − W_i S_i``, ``S_{i+1} = γ_i S_i + K̃_iᵀ V_new,i``.

    Inputs are chunk-major ``[n, B, …]`` (``B`` = batch × heads). Returns the states entering each
    chunk ``[n, B, d_k, d_v]``, ``V_new [n, B, C, d_v]`` and the final state ``[B, d_k, d_v]`` —
    two fused matmul-adds per chunk, written into preallocated buffers when no gradient is needed.
    """
    n, B, C, dk = W.shape
    dv = U.shape[-1]
    if not torch.is_grad_enabled() or not any(x.requires_grad for x in (W, U, k_endT, S0)):
        S_all = W.new_empty(n + 1, B, dk, dv)
        S_all[0] = S0
        V_new = W.new_empty(n, B, C, dv)
        for i in range(n):
            torch.baddbmm(U[i], W[i], S_all[i], alpha=-1, out=V_new[i])
            if decay_end is None:
                torch.baddbmm(S_all[i], k_endT[i], V_new[i], out=S_all[i + 1])
            else:
                torch.mul(S_all[i], decay_end[i, :, None, None], out=S_all[i + 1])
                S_all[i + 1].baddbmm_(k_endT[i], V_new[i])
        return S_all[:-1], V_new, S_all[-1]
    S, states, vs = S0, [], []
    for i in range(n):
        states.append(S)
        vs.append(torch.baddbmm(U[i], W[i], S, alpha=-1))
        S = S if decay_end is None else S * decay_end[i, :, None, None]
        S = torch.baddbmm(S, k_endT[i], vs[-1])
    return torch.stack(states), torch.stack(vs), S


def _chunk_major(x: torch.Tensor, C: int) -> torch.Tensor:
    """``[b, t, h, *rest]`` → ``[n, b·h, C, *rest]`` in the accumulation dtype, tail zero-padded.

    Chunk-major and contiguous: each chunk's ``[b·h, C, …]`` slice is one dense block, so the batched
    matmuls read dense blocks and the state pass indexes chunks cheaply. Strided views are much
    slower here, even ones BLAS could take as they are: ``[b, h, n, C, d]`` views made the Gram
    matrices about 4× slower, and the permuted view that ``b = 1`` allows still made every product
    about 2× slower than one copy plus dense products (20.4 → 16.1 ms per call at t = 4096). Where
    the input is already in this order (``b = h = 1``) the result is the input itself, so the
    caller must never write into it in place.
    """
    b, t, h = x.shape[:3]
    rest = x.shape[3:]
    pad = (-t) % C
    x = acc(x)
    if pad:
        x = torch.cat([x, x.new_zeros(b, pad, h, *rest)], dim=1)
    n = (t + pad) // C
    perm = (1, 0, 3, 2) + tuple(range(4, 4 + len(rest)))
    return x.reshape(b, n, C, h, *rest).permute(*perm).reshape(n, b * h, C, *rest).contiguous()


def _chunk(q, k, v, beta, g, scale, C, initial_state):
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    C = chunk_length(C, t)
    grad = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in (q, k, v, beta, g, initial_state))
    # without autograd, work in place: fewer fresh buffers (attnlab bench ops)
    ip = (lambda f, f_: f) if grad else (lambda f, f_: f_)
    mul, tril_ = ip(torch.Tensor.mul, torch.Tensor.mul_), ip(torch.Tensor.tril, torch.Tensor.tril_)
    q, k, v, beta = (_chunk_major(x, C) for x in (q, k, v, beta))  # [n, b·h, C, d], β [n, b·h, C]
    n = q.shape[0]
    kk = k @ k.transpose(-1, -2)
    _check_stability_from_gram(kk.detach(), beta.detach())
    P = q @ k.transpose(-1, -2)
    if g is None:
        kd, qg, k_end, decay_end = k, q, k, None
        A = kk
        P = tril_(P)
    else:
        G = _chunk_major(g, C).cumsum(-1)
        # mask before exp: above the diagonal G_i − G_j > 0 could overflow, and inf · 0 = nan
        above = torch.ones(C, C, dtype=torch.bool, device=q.device).triu(1)
        D = (G[..., :, None] - G[..., None, :]).masked_fill(above, float("-inf")).exp()
        A, P = mul(kk, D), mul(P, D)
        gam = G.exp()[..., None]
        kd, qg = k * gam, q * gam
        k_end = k * (G[..., -1:] - G).exp()[..., None]
        decay_end = G[..., -1].exp()
    # T = (I + A)⁻¹ diag(β) with A = strict_lower(diag(β) K Kᵀ ⊙ decay); W = T K, U = T V
    T = mul(unit_lower_inverse(tril_(mul(A, beta[..., :, None]), -1)), beta[..., None, :])
    S0 = q.new_zeros(b * h, dk, dv) if initial_state is None else acc(initial_state).reshape(b * h, dk, dv)
    states, V_new, S = _state_pass(T @ kd, T @ v, k_end.transpose(-1, -2), decay_end, S0)
    # O = (γ ⊙ Q) S_i + P V_new, batched over all chunks once the states are known
    # (q may still be a view of the caller's tensor when b = h = 1: nothing here writes into it)
    O = torch.matmul(qg, states)
    O = (O + P @ V_new) * scale if grad else O.add_(P @ V_new).mul_(scale)
    o = O.reshape(n, b, h, C, dv).permute(1, 0, 3, 2, 4).reshape(b, n * C, h, dv)[:, :t]
    return o, S.reshape(b, h, dk, dv)


def gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None,
    beta: torch.Tensor,
    *,
    mode: str = "chunk",
    chunk_size: int = 64,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    backend: str = "torch",
):
    """Gated delta rule. ``q, k [b, t, h, d_k]``, ``v [b, t, h, d_v]``, ``g, beta [b, t, h]`` (``g ≤ 0``).

    Returns ``o [b, t, h, d_v]`` in ``v``'s dtype (and the final state, float32 or float64, when
    ``output_final_state``). Warns with :class:`DeltaRuleBlowUpWarning` when ``β‖k‖² > 2`` somewhere
    and raises ``FloatingPointError`` instead of returning NaN/Inf.

    ``backend``: ``"torch"`` (default: attnlab's own forms, on any device; a chunk-form call on the
    CPU in float32 that needs no gradient runs in the compiled kernel of :mod:`attnlab.ops.native`
    when it is available), ``"native"`` (that kernel, or a ``ValueError`` saying why it cannot run),
    ``"pytorch"`` (PyTorch ops only), ``"fla"`` (flash-linear-attention's Triton chunk kernel; CUDA,
    ``mode="chunk"``, ``chunk_size=64``) or ``"auto"`` (fla where it can run, else ``"torch"``).
    See :mod:`attnlab.ops.fla_backend`.
    """
    b, t, h, dk, dv = check_qkv(q, k, v)
    check_choice("mode", mode, MODES)
    check_positive_int("chunk_size", chunk_size)
    g = check_log_decay(g, b, t, h)
    beta = check_beta(beta, b, t, h)
    check_state("initial_state", initial_state, (b, h, dk, dv))
    scale = dk**-0.5 if scale is None else float(scale)
    needs_grad = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (q, k, v, g, beta, initial_state))
    which = resolve_backend(backend, q, mode, needs_grad, chunk_size)
    if which in ("torch", "native"):
        why = native.eligibility(q, k, v, g, beta, initial_state, mode=mode, needs_grad=needs_grad)
        if which == "native" and why:
            raise ValueError(f"backend='native': {why}")
        which = "native" if why is None else "pytorch"
    if which == "fla":
        _check_stability(k, beta)
        o, S = fla_chunk(q, k, v, g, beta, scale=scale, initial_state=initial_state)
    elif which == "native":
        o, S, worst = native.delta_chunk(q, k, v, g, beta, scale=scale, chunk_size=chunk_size,
                                         initial_state=initial_state)
        if worst > CONTRACTIVE_LIMIT:
            _warn_blow_up(worst, stacklevel=3)
    elif mode == "recurrent":
        _check_stability(k, beta)
        o, S = _recurrent(q, k, v, beta, g, scale, initial_state)
    else:
        o, S = _chunk(q, k, v, beta, g, scale, chunk_size, initial_state)
    _check_finite_output(o, S)
    o = o.to(v.dtype)
    return (o, S) if output_final_state else o


def delta_rule(q, k, v, beta, *, mode="chunk", chunk_size=64, scale=None, initial_state=None,
               output_final_state=False, backend="torch"):
    """Delta rule (DeltaNet): :func:`gated_delta_rule` with no decay. Same shapes and keywords."""
    return gated_delta_rule(q, k, v, None, beta, mode=mode, chunk_size=chunk_size, scale=scale,
                            initial_state=initial_state, output_final_state=output_final_state, backend=backend)


def gated_delta_rule_step(q_t, k_t, v_t, beta_t, state, g_t=None, *, scale=None):
    """One decoding step: ``q_t, k_t [b, h, d_k]``, ``v_t [b, h, d_v]``, ``beta_t, g_t [b, h]``.

    ``state`` is ``[b, h, d_k, d_v]`` or None (zeros). Returns ``(o_t [b, h, d_v], new_state)``.
    """
    b, h, dk, dv = check_step_qkv(q_t, k_t, v_t)
    check_tensor("beta_t", beta_t, 2, "[batch, heads]")
    check_state("state", state, (b, h, dk, dv))
    scale = dk**-0.5 if scale is None else float(scale)
    S = acc(q_t).new_zeros(b, h, dk, dv) if state is None else acc(state)
    if g_t is not None:
        check_tensor("g_t", g_t, 2, "[batch, heads]")
        S = S * acc(g_t).exp()[..., None, None]
    k32 = acc(k_t)
    err = acc(v_t) - torch.einsum("bhk,bhkv->bhv", k32, S)
    S = S + acc(beta_t)[..., None, None] * k32[..., :, None] * err[..., None, :]
    o = torch.einsum("bhk,bhkv->bhv", acc(q_t) * scale, S)
    return o.to(v_t.dtype), S


def delta_rule_step(q_t, k_t, v_t, beta_t, state, *, scale=None):
    return gated_delta_rule_step(q_t, k_t, v_t, beta_t, state, None, scale=scale)


def implicit_matrix(op, q: torch.Tensor, k: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """The matrix ``A [b, h, t, t]`` with ``op(q, k, v, …) = A v`` for an op that is linear in ``v``.

    Runs ``op`` once on one-hot values (``v = I_t`` per batch row and head): exact for every
    v-linear op (delta rules, MesaNet, decayed linear attention, TTT with a linear model and squared
    loss), at ``O(t²)`` memory per head.
    """
    b, t, h, _ = q.shape
    eye = torch.eye(t, dtype=q.dtype, device=q.device)[None, :, None, :].expand(b, t, h, t)
    o = op(q, k, eye.contiguous(), *args, **kwargs)  # o[b, i, h, j] = A_ij
    return o.permute(0, 2, 1, 3)
