"""The delta rule and the gated delta rule (DeltaNet, Yang et al. 2024; Gated DeltaNet, Yang et al. 2025).

State ``S [b, h, d_k, d_v]``; with ``α_t = exp(g_t)`` (``g = None``: ``α = 1``)::

    S_t = α_t (I − β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ,   o_t = S_tᵀ (scale · q_t)

— one SGD step of test-time training on ``½‖Sᵀk_t − v_t‖²`` with learning rate ``β_t``, after a
decoupled weight decay ``α_t`` (post 11320; claims S1, S2).

``mode="recurrent"`` is the token loop (the reference), ``mode="chunk"`` the chunkwise WY/UT form;
the engines that run them (PyTorch, a compiled CPU kernel, fla's Triton kernels) and the dispatch
among them live in :mod:`attnlab.ops.delta_engines`. Float64 inputs compute in float64, others in
float32.
"""

from __future__ import annotations

import warnings

import torch

from ..checks import all_finite, check_choice, check_positive_int, check_qkv, check_state, check_tensor
from . import delta_engines
from .decay import MODES, check_log_decay
from .state_step import state_step

# β‖k‖² beyond 2 makes (I − β k kᵀ) expansive along k: the state can grow geometrically.
CONTRACTIVE_LIMIT = 2.0
# float32 rounding puts β‖k‖² = 2 (β = 2, unit keys) a few ulps above the limit: not a blow-up
LIMIT_SLACK = 1e-5


class DeltaRuleBlowUpWarning(RuntimeWarning):
    """The delta-rule recurrence is not contractive for these keys and β (it may blow up)."""


def check_beta(beta: torch.Tensor, b: int, t: int, h: int) -> torch.Tensor:
    check_tensor("beta", beta, 3, "[batch, seq, heads]")
    if tuple(beta.shape) != (b, t, h):
        raise ValueError(f"beta must have shape {(b, t, h)} [batch, seq, heads], got {tuple(beta.shape)}")
    return beta


def _warn_blow_up(worst: float, stacklevel: int = 3) -> None:
    warnings.warn(
        f"delta rule: max |β|‖k‖² = {worst:.4g} > {CONTRACTIVE_LIMIT:g}, so I − β k kᵀ is expansive and the state "
        "can blow up; L2-normalise the keys (the mixers' default) or keep β in (0, 2/‖k‖²)",
        DeltaRuleBlowUpWarning,
        stacklevel=stacklevel,
    )


def _warn_negative_beta(beta: torch.Tensor, stacklevel: int = 3) -> None:
    low = float(beta.detach().min()) if beta.numel() else 0.0
    if low < 0:
        warnings.warn(
            f"delta rule: β has negative entries (min {low:.4g}); with β < 0, I − β k kᵀ stretches the state along "
            "k (eigenvalue 1 + |β|‖k‖² > 1) and it can grow without bound; keep β in [0, 2/‖k‖²] (the mixers "
            "take β = sigmoid(·))",
            DeltaRuleBlowUpWarning,
            stacklevel=stacklevel,
        )


def _check_finite_output(o: torch.Tensor, S: torch.Tensor | None, worst: float, inputs: dict) -> None:
    """Raise instead of returning NaN/Inf, naming what diverged: the inputs, the recurrence, or the values."""
    if all_finite(o, *([] if S is None else [S])):
        return
    bad = [n for n, x in inputs.items() if x is not None and not all_finite(x)]
    if bad:
        why = f"the inputs already hold NaN/Inf ({', '.join(bad)}): the cause is upstream of the delta rule"
    elif worst > CONTRACTIVE_LIMIT + LIMIT_SLACK:
        why = (f"the recurrence blew up: max |β|‖k‖² = {worst:.4g} > {CONTRACTIVE_LIMIT:g} makes I − β k kᵀ "
               "expansive; L2-normalise the keys and keep β in [0, 2/‖k‖²]")
    else:
        why = ("the state grew past the float range with a contractive recurrence (β‖k‖² within [0, 2]): the values "
               "or the initial state are too large for the dtype")
    raise FloatingPointError(f"delta rule produced NaN/Inf: {why}")


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
    backend: str = "auto",
):
    """Gated delta rule. ``q, k [b, t, h, d_k]``, ``v [b, t, h, d_v]``, ``g, beta [b, t, h]`` (``g ≤ 0``).

    Returns ``o [b, t, h, d_v]`` in ``v``'s dtype (and the final state, float32 or float64, when
    ``output_final_state``). Warns with :class:`DeltaRuleBlowUpWarning` when ``β‖k‖²`` leaves ``[0, 2]`` somewhere
    and raises ``FloatingPointError`` instead of returning NaN/Inf.

    ``backend``: ``"auto"`` (default: the fastest engine that can run the call: fla's Triton kernel on
    CUDA, the compiled CPU kernel for a chunk-form call that needs no gradient, PyTorch otherwise),
    ``"native"``, ``"pytorch"`` or ``"fla"`` (that engine, or a ``ValueError`` saying why it cannot run).
    ``"torch"`` is a deprecated name for ``"auto"``. See :mod:`attnlab.ops.delta_engines`.
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
    choice = delta_engines.choose(backend, q, k, v, g, beta, initial_state, mode=mode, chunk_size=chunk_size,
                                  needs_grad=needs_grad)
    o, S, worst = delta_engines.ENGINES[choice.engine](q, k, v, g, beta, scale=scale, chunk_size=chunk_size,
                                                       initial_state=initial_state,
                                                       final_state=output_final_state)
    _warn_negative_beta(beta)
    if worst > CONTRACTIVE_LIMIT + LIMIT_SLACK:
        _warn_blow_up(worst)
    _check_finite_output(o, S, worst, {"q": q, "k": k, "v": v, "g": g, "beta": beta, "initial_state": initial_state})
    o = o.to(v.dtype)
    return (o, S) if output_final_state else o


def delta_rule(q, k, v, beta, *, mode="chunk", chunk_size=64, scale=None, initial_state=None,
               output_final_state=False, backend="auto"):
    """Delta rule (DeltaNet): :func:`gated_delta_rule` with no decay. Same shapes and keywords."""
    return gated_delta_rule(q, k, v, None, beta, mode=mode, chunk_size=chunk_size, scale=scale,
                            initial_state=initial_state, output_final_state=output_final_state, backend=backend)


def gated_delta_rule_step(q_t, k_t, v_t, beta_t, state, g_t=None, *, scale=None):
    """One decoding step: ``q_t, k_t [b, h, d_k]``, ``v_t [b, h, d_v]``, ``beta_t, g_t [b, h]``.

    ``state`` is ``[b, h, d_k, d_v]`` or None (zeros). Returns ``(o_t [b, h, d_v], new_state)``.
    """
    check_tensor("beta_t", beta_t, 2, "[batch, heads]")
    return state_step(q_t, k_t, v_t, state, g_t=g_t, beta_t=beta_t, scale=scale)


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
