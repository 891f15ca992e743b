"""The (gated) delta rule's engines, one function each, and the one dispatch that picks among them.

Every engine computes the same recurrence (:mod:`attnlab.ops.delta`) from already-checked inputs
``q, k [b, t, h, d_k]``, ``v [b, t, h, d_v]``, ``g, β [b, t, h]`` (``g`` may be None) and returns
``(o [b, t, h, d_v], S [b, h, d_k, d_v], max β‖k‖²)`` in the accumulation dtype (with ``final_state=False`` an
engine may return ``S`` None and skip computing it: the native one does, in training):

==============  ===============================================================================
``recurrent``   the token loop in PyTorch: the reference (``mode="recurrent"``)
``pytorch``     the chunkwise WY/UT form in PyTorch ops: any device and dtype, autograd
``native``      the same chunk form as a compiled CPU kernel (:mod:`attnlab.ops.native`): float32
                or bfloat16 on the CPU; with gradients (float32), its compiled chunkwise backward
``fla``         flash-linear-attention's Triton chunk kernels (:mod:`attnlab.ops.fla_kernels`): CUDA
==============  ===============================================================================

A caller asks for a *backend*: ``"auto"`` (the default) takes the fastest engine that can run the
call (fla, then native, then pytorch); ``"native"``, ``"pytorch"`` and ``"fla"`` insist on that
engine and raise a ``ValueError`` saying why it cannot run. :func:`choose` returns the engine and,
for every engine passed over, the reason, which is what ``attnlab info`` and the benchmarks print.

The chunk form, with ``G`` the in-chunk cumulative log-decay and ``γ = exp(G)``, per chunk::

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
from dataclasses import dataclass, field

import torch

from ..checks import check_choice
from . import native
from .chunking import chunk_length
from .fla_kernels import fla_chunk, fla_unavailable_reason
from .precision import acc
from .triangular import unit_lower_inverse

BACKENDS = ("auto", "native", "pytorch", "fla")
# names of an earlier release, kept for one release with a DeprecationWarning
DEPRECATED_BACKENDS = {"torch": "auto"}
CHUNK_ENGINES = ("fla", "native", "pytorch")  # auto's order of preference


def max_beta_k2(k: torch.Tensor, beta: torch.Tensor) -> float:
    """``max β‖k‖²``: beyond 2, ``I − β k kᵀ`` is expansive along ``k``."""
    with torch.no_grad():
        return float((acc(beta).abs() * acc(k).pow(2).sum(-1)).max()) if k.numel() else 0.0


# -- engines ------------------------------------------------------------------------------------


def recurrent(q, k, v, g, beta, *, scale, chunk_size, initial_state, final_state=True):
    """The token loop (the reference); ``chunk_size`` is unused."""
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    worst = max_beta_k2(k, beta)
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
    return torch.stack(out, dim=1), S, worst


def _state_pass(W, U, k_endT, decay_end, S0, reuse: bool):
    """The only sequential part: ``V_new,i = U_i − W_i S_i``, ``S_{i+1} = γ_i S_i + K̃_iᵀ V_new,i``.

    Inputs are chunk-major ``[n, B, …]`` (``B`` = batch × heads). Returns the states entering each
    chunk ``[n, B, d_k, d_v]``, ``V_new [n, B, C, d_v]`` and the final state ``[B, d_k, d_v]``: two
    fused matmul-adds per chunk, written into preallocated buffers when ``reuse`` (no gradient).
    """
    n, B, C, dk = W.shape
    dv = U.shape[-1]
    if reuse:
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
    about 2× slower than one copy plus dense products. Where the input is already in this order
    (``b = h = 1``) the result is the input itself, so the caller must never write into it in place.
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


def _mul(x, y, reuse: bool):
    """``x ⊙ y``, written into ``x`` when ``reuse`` (a temporary that no autograd graph holds)."""
    return x.mul_(y) if reuse else x * y


def _tril(x, diagonal: int, reuse: bool):
    return x.tril_(diagonal) if reuse else x.tril(diagonal)


def chunk_pytorch(q, k, v, g, beta, *, scale, chunk_size, initial_state, final_state=True):
    """The chunkwise WY/UT form in PyTorch ops (see the module docstring)."""
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    C = chunk_length(chunk_size, t)
    # Without autograd the temporaries are overwritten in place and the state pass writes into
    # preallocated buffers: fewer fresh allocations, the same arithmetic (attnlab bench ops).
    reuse = not (torch.is_grad_enabled() and any(x is not None and x.requires_grad
                                                 for x in (q, k, v, beta, g, initial_state)))
    q, k, v, beta = (_chunk_major(x, C) for x in (q, k, v, beta))  # [n, b·h, C, d], β [n, b·h, C]
    n = q.shape[0]
    kk = k @ k.transpose(-1, -2)
    # ‖k‖² is free on the diagonal of K Kᵀ
    worst = float((kk.detach().diagonal(dim1=-2, dim2=-1) * beta.detach().abs()).max()) if kk.numel() else 0.0
    P = q @ k.transpose(-1, -2)
    if g is None:
        kd, qg, k_end, decay_end = k, q, k, None
        A = kk
        P = _tril(P, 0, reuse)
    else:
        G = _chunk_major(g, C).cumsum(-1)
        # mask before exp: above the diagonal G_i − G_j > 0 could overflow, and inf · 0 = nan
        above = torch.ones(C, C, dtype=torch.bool, device=q.device).triu(1)
        D = (G[..., :, None] - G[..., None, :]).masked_fill(above, float("-inf")).exp()
        A, P = _mul(kk, D, reuse), _mul(P, D, reuse)
        gam = G.exp()[..., None]
        kd, qg = k * gam, q * gam
        k_end = k * (G[..., -1:] - G).exp()[..., None]
        decay_end = G[..., -1].exp()
    # T = (I + A)⁻¹ diag(β) with A = strict_lower(diag(β) K Kᵀ ⊙ decay); W = T K, U = T V
    T = _mul(unit_lower_inverse(_tril(_mul(A, beta[..., :, None], reuse), -1, reuse)), beta[..., None, :], reuse)
    S0 = q.new_zeros(b * h, dk, dv) if initial_state is None else acc(initial_state).reshape(b * h, dk, dv)
    states, V_new, S = _state_pass(T @ kd, T @ v, k_end.transpose(-1, -2), decay_end, S0, reuse)
    # O = (γ ⊙ Q) S_i + P V_new, batched over all chunks once the states are known
    # (q may still be a view of the caller's tensor when b = h = 1: nothing here writes into it)
    O = torch.matmul(qg, states)
    O = O.add_(P @ V_new).mul_(scale) if reuse else (O + P @ V_new) * scale
    o = O.reshape(n, b, h, C, dv).permute(1, 0, 3, 2, 4).reshape(b, n * C, h, dv)[:, :t]
    return o, S.reshape(b, h, dk, dv), worst


def chunk_native(q, k, v, g, beta, *, scale, chunk_size, initial_state, final_state=True):
    """The chunk form in the compiled CPU kernel (:func:`attnlab.ops.native.delta_chunk`); where a gradient
    is needed, with the compiled backward (:class:`attnlab.ops.native.NativeDelta`)."""
    if torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in (q, k, v, g, beta, initial_state)):
        o, S, worst = native.NativeDelta.apply(q, k, v, g, beta, initial_state, scale, chunk_size, final_state)
        return o, S, float(worst)
    return native.delta_chunk(q, k, v, g, beta, scale=scale, chunk_size=chunk_size, initial_state=initial_state,
                              final_state=final_state)


def chunk_fla(q, k, v, g, beta, *, scale, chunk_size, initial_state, final_state=True):
    """fla's Triton chunk kernel (chunks of 64)."""
    worst = max_beta_k2(k, beta)
    o, S = fla_chunk(q, k, v, g, beta, scale=scale, initial_state=initial_state)
    return o, S, worst


ENGINES = {"recurrent": recurrent, "pytorch": chunk_pytorch, "native": chunk_native, "fla": chunk_fla}


# -- dispatch -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """The engine a call runs on, and why each other engine that could be asked for did not."""

    engine: str
    passed_over: dict[str, str] = field(default_factory=dict)


def _native_why_not(tensors, needs_grad: bool) -> str | None:
    for x in tensors:
        if needs_grad and x is not None and x.dtype != torch.float32:
            return (f"the native backward computes in float32; {str(x.dtype).removeprefix('torch.')} inputs that "
                    "need gradients run in PyTorch")
        if x is not None and x.device.type != "cpu":
            return f"the native kernel runs on the CPU, got a tensor on {x.device}"
        if x is not None and x.dtype == torch.float64:
            return "the native kernel computes in float32; float64 inputs run in PyTorch (in float64)"
    return native.unavailable_reason()


def resolve_backend_name(backend: str) -> str:
    """A current backend name; a deprecated one is translated with a ``DeprecationWarning``."""
    if backend in DEPRECATED_BACKENDS:
        new = DEPRECATED_BACKENDS[backend]
        warnings.warn(f"backend={backend!r} is deprecated; use backend={new!r} (same engines)", DeprecationWarning,
                      stacklevel=4)
        return new
    return check_choice("backend", backend, BACKENDS)


def choose(backend: str, q, k, v, g, beta, initial_state, *, mode: str, chunk_size: int, needs_grad: bool) -> Choice:
    """The engine for this call (a ``ValueError`` when the backend asked for cannot run it)."""
    backend = resolve_backend_name(backend)
    tensors = (q, k, v, g, beta, initial_state)
    if mode == "recurrent":
        if backend in ("auto", "pytorch"):
            return Choice("recurrent", {e: f"mode='recurrent' runs the token loop, not a chunk form ({e})"
                                        for e in CHUNK_ENGINES})
        raise ValueError("backend='native': the native kernel runs the chunk form only, got mode='recurrent'"
                         if backend == "native" else fla_unavailable_reason(q, mode))
    why = {"fla": fla_unavailable_reason(q, mode, needs_grad, chunk_size),
           "native": _native_why_not(tensors, needs_grad),
           "pytorch": None}
    if backend != "auto":
        if why[backend] is not None:
            reason = why[backend]
            raise ValueError(reason if reason.startswith("backend=") else f"backend={backend!r}: {reason}")
        return Choice(backend, {e: f"backend={backend!r} was asked for" for e in CHUNK_ENGINES if e != backend})
    engine = next(e for e in CHUNK_ENGINES if why[e] is None)
    return Choice(engine, {e: why[e] for e in CHUNK_ENGINES[:CHUNK_ENGINES.index(engine)]})
