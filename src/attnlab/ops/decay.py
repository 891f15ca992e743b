"""Decayed linear attention: ``S_t = exp(g_t) S_{t-1} + k_t v_tᵀ``, ``o_t = S_tᵀ (scale · q_t)``.

One engine serves three families (state ``[b, h, d_k, d_v]``):
- linear attention (``g = 0``; Katharopoulos et al. 2020),
- a fixed decay per head (RetNet, Sun et al. 2023: ``g = log γ_h``),
- a data-dependent log-decay per token and head (simple GLA / Mamba-2 style, ``g_t ≤ 0``).

``recurrent`` is the token loop, the reference (float32 math; float64 inputs stay float64).
``chunk`` splits the sequence into chunks
of ``C`` tokens: inside a chunk the quadratic form ``(Q Kᵀ ⊙ D) V`` with the decay matrix
``D_ij = exp(G_i − G_j)`` (``G`` the in-chunk cumulative log-decay), across chunks the state.
Its cost is ``O(t·C·d + t·d²)`` with a Python loop over chunks only. A float32 CPU call that needs
no gradient runs the same chunk form compiled (:func:`attnlab.ops.native.decay_chunk`) where the
kernel builds (``backend="auto"``, the default; ``"native"`` insists on it, ``"pytorch"`` never uses it):
it spares the Python loop over chunks and half of each ``C × C`` product (1.2–2.5× the PyTorch chunk
form, ``docs/benchmarks.md``).
"""

from __future__ import annotations

import torch

from ..checks import check_choice, check_positive_int, check_qkv, check_state, check_tensor
from . import native
from .chunking import chunk_length, from_chunks, to_chunks
from .precision import acc
from .state_step import state_step

MODES = ("chunk", "recurrent")
BACKENDS = ("auto", "native", "pytorch")


def native_why_not(tensors, needs_grad: bool) -> str | None:
    """Why the compiled chunk form cannot run this call (None when it can)."""
    if needs_grad:
        return "the native kernel has no backward for decayed linear attention; calls that need gradients run in PyTorch"
    for x in tensors:
        if x is not None and x.device.type != "cpu":
            return f"the native kernel runs on the CPU, got a tensor on {x.device}"
        if x is not None and x.dtype != torch.float32:
            return f"the native kernel computes in float32; {str(x.dtype).removeprefix('torch.')} inputs run in PyTorch"
    return native.unavailable_reason()


def check_log_decay(g: torch.Tensor | None, b: int, t: int, h: int) -> torch.Tensor | None:
    if g is None:
        return None
    check_tensor("g", g, 3, "[batch, seq, heads]")
    if tuple(g.shape) != (b, t, h):
        raise ValueError(f"g must have shape {(b, t, h)} [batch, seq, heads], got {tuple(g.shape)}")
    if bool((g > 0).any()):
        raise ValueError("g is a log-decay and must be <= 0 (decay exp(g) in (0, 1]); got positive entries")
    return g


def _recurrent(q, k, v, g, scale, initial_state):
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    S = acc(q).new_zeros(b, h, dk, dv)
    if initial_state is not None:
        S = S + acc(initial_state)
    q, k, v = acc(q) * scale, acc(k), acc(v)
    out = []
    for i in range(t):
        if g is not None:
            S = S * acc(g[:, i]).exp()[..., None, None]
        S = S + k[:, i, :, :, None] * v[:, i, :, None, :]  # [b, h, dk, dv]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, i], S))
    return torch.stack(out, dim=1), S


def _chunk(q, k, v, g, scale, chunk_size, initial_state):
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    C = chunk_length(chunk_size, t)
    q, k, v = to_chunks(q, C) * scale, to_chunks(k, C), to_chunks(v, C)  # (b, h, n, C, d)
    n = q.shape[2]
    tril = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    scores = q @ k.transpose(-1, -2)  # (b, h, n, C, C)
    if g is None:
        intra = scores.masked_fill(~tril, 0.0) @ v
        q_in, k_out, chunk_decay = q, k, None
    else:
        G = to_chunks(g, C).cumsum(-1)  # (b, h, n, C)
        # mask before exp: above the diagonal G_i - G_j > 0 could overflow to inf, and inf * 0 = nan
        diff = (G[..., :, None] - G[..., None, :]).masked_fill(~tril, float("-inf"))
        intra = (scores * diff.exp()) @ v
        q_in = q * G.exp()[..., None]  # decay from the chunk start to token i
        k_out = k * (G[..., -1:] - G).exp()[..., None]  # decay from token j to the chunk end
        chunk_decay = G[..., -1].exp()  # (b, h, n)
    kv = k_out.transpose(-1, -2) @ v  # (b, h, n, dk, dv)
    S = q.new_zeros(b, h, dk, dv) if initial_state is None else acc(initial_state)
    inter = []
    for i in range(n):
        inter.append(q_in[:, :, i] @ S)
        S = (S if chunk_decay is None else S * chunk_decay[:, :, i, None, None]) + kv[:, :, i]
    return from_chunks(intra + torch.stack(inter, dim=2), t), S


def decay_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    *,
    mode: str = "chunk",
    chunk_size: int = 64,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    backend: str = "auto",
):
    """``q, k [b, t, h, d_k]``, ``v [b, t, h, d_v]``, log-decay ``g [b, t, h]`` (≤ 0, or None).

    Returns ``o [b, t, h, d_v]`` (in ``v``'s dtype) and, when ``output_final_state``, the float32 (or float64)
    state ``[b, h, d_k, d_v]``; ``scale`` defaults to ``d_k ** -0.5``. ``backend`` picks the chunk form's
    engine (module docstring).
    """
    b, t, h, dk, dv = check_qkv(q, k, v)
    check_choice("mode", mode, MODES)
    check_choice("backend", backend, BACKENDS)
    check_positive_int("chunk_size", chunk_size)
    g = check_log_decay(g, b, t, h)
    check_state("initial_state", initial_state, (b, h, dk, dv))
    scale = dk**-0.5 if scale is None else float(scale)
    tensors = (q, k, v, g, initial_state)
    why = "mode='recurrent' runs the token loop" if mode == "recurrent" else None
    if why is None and backend != "pytorch":
        needs_grad = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tensors)
        why = native_why_not(tensors, needs_grad)
    if backend == "native" and why is not None:
        raise ValueError(f"backend='native': {why}")
    if mode == "recurrent":
        o, S = _recurrent(q, k, v, g, scale, initial_state)
    elif backend != "pytorch" and why is None:
        o, S = native.decay_chunk(q, k, v, g, scale=scale, chunk_size=chunk_size, initial_state=initial_state)
    else:
        o, S = _chunk(q, k, v, g, scale, chunk_size, initial_state)
    o = o.to(v.dtype)
    return (o, S) if output_final_state else o


def decay_linear_attention_step(q_t, k_t, v_t, state, g_t=None, *, scale=None):
    """One decoding step: ``q_t, k_t [b, h, d_k]``, ``v_t [b, h, d_v]``, ``g_t [b, h]``.

    ``state`` is ``[b, h, d_k, d_v]`` or None (zeros). Returns ``(o_t [b, h, d_v], new_state)``.
    """
    return state_step(q_t, k_t, v_t, state, g_t=g_t, scale=scale)


def decay_attention_matrix(
    q: torch.Tensor, k: torch.Tensor, g: torch.Tensor | None = None, *, scale: float | None = None
) -> torch.Tensor:
    """The implicit matrix ``A [b, h, t, t]`` with ``o = A v``: ``A_ij = scale·q_i·k_j·exp(G_i − G_j)``, j ≤ i."""
    b, t, h, dk = q.shape
    scale = dk**-0.5 if scale is None else float(scale)
    s = torch.einsum("bqhd,bkhd->bhqk", acc(q), acc(k)) * scale
    tril = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    if g is None:
        return s.masked_fill(~tril, 0.0)
    G = acc(g).transpose(1, 2).cumsum(-1)  # [b, h, t]
    diff = (G[..., :, None] - G[..., None, :]).masked_fill(~tril, float("-inf"))
    return s * diff.exp()
