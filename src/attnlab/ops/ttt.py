"""Test-time training (TTT) in its general form (post 11320; Sun et al. 2024; LaCT, Zhang et al. 2025).

The state is the parameters ``W`` of a model ``f(W; k)``. Each token brings a loss
``ℓ_t(W) = L(f(W; k_t), target(k_t, v_t))``; an optimiser updates ``W``; the output is a readout of the
updated model at ``q_t``. With a mini-batch of ``m`` tokens, the gradients of a mini-batch are taken at
the state of its start ``W_0`` and token ``t`` reads::

    W_t = α W_0 − η_t · U(Σ_{j ≤ t in the batch} ∇ℓ_j(W_0))

where ``U`` is the identity (``optimizer="sgd"``) or the Newton–Schulz orthogonalisation of Muon
(``optimizer="muon"``), ``η_t`` the per-token learning rate and ``α = exp(g_t)`` a decoupled weight
decay (mini-batch 1 only). The last token's ``W_t`` is the next state.

Special cases, checked in the tests: a linear model, squared loss, SGD and ``m = 1`` is the delta
rule with ``β = η`` (claim S1); adding the decay gives the gated delta rule (S2); LayerNorm-linear
with target ``v − k`` and ``m = 16`` is TTT-Linear (flash-linear-attention's ``ttt`` reference).

Any model with ``init_state``/``head_params``/``predict``/``readout`` on single tokens and any differentiable loss
plug in: gradients come from ``torch.func`` (``vmap`` of ``grad``), so this is a reference, not a
fast path — the delta rules have chunkwise forms for speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import grad, vmap

from ..checks import check_choice, check_positive_int, check_qkv, check_tensor
from .decay import check_log_decay
from .precision import acc

NS_COEFFICIENTS = {
    "quintic": (3.4445, -4.7750, 2.0315),  # Muon's (Jordan et al. 2024): fast, singular values ≈ 1 ± 0.3
    "cubic": (1.5, -0.5, 0.0),  # the classic iteration: slow, converges to the exact polar factor U Vᵀ
}


def newton_schulz(G: torch.Tensor, steps: int = 5, coefficients: str = "quintic", eps: float = 1e-7) -> torch.Tensor:
    """Approximate the orthogonal polar factor ``U Vᵀ`` of ``G = U Σ Vᵀ`` (over the last two dims)."""
    check_choice("coefficients", coefficients, tuple(NS_COEFFICIENTS))
    a, b, c = NS_COEFFICIENTS[coefficients]
    X = acc(G)
    wide = X.shape[-2] > X.shape[-1]
    if wide:
        X = X.transpose(-1, -2)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)  # spectral norm ≤ Frobenius norm ≤ 1
    for _ in range(steps):
        A = X @ X.transpose(-1, -2)
        X = a * X + (b * A + c * A @ A) @ X
    return X.transpose(-1, -2) if wide else X


@dataclass
class LinearModel:
    """``f(W; k) = Wᵀ k`` (+ ``b``): the model behind linear attention and the delta rule."""

    bias: bool = False

    def init_state(self, b, h, dk, dv, device, dtype=torch.float32):
        st = {"W": torch.zeros(b, h, dk, dv, device=device, dtype=dtype)}
        if self.bias:
            st["b"] = torch.zeros(b, h, dv, device=device, dtype=dtype)
        return st

    def head_params(self):
        return {}

    def predict(self, st, k, hp):
        z = k @ st["W"]
        return z + st["b"] if self.bias else z

    def readout(self, st, q, hp):
        return self.predict(st, q, hp)


@dataclass
class LayerNormLinear:
    """TTT-Linear (Sun et al. 2024): ``f(W, b; k) = LN(k W + b)·w + β`` with a fixed LayerNorm ``(w, β)``
    per head; the readout is ``z + LN(z)·w + β`` with ``z = q W + b`` (as in flash-linear-attention)."""

    w: torch.Tensor  # [h, dv]
    b: torch.Tensor  # [h, dv]
    eps: float = 1e-6

    def init_state(self, b, h, dk, dv, device, dtype=torch.float32):
        z = dict(device=device, dtype=dtype)
        return {"W": torch.zeros(b, h, dk, dv, **z), "b": torch.zeros(b, h, dv, **z)}

    def head_params(self):
        return {"w": self.w, "b": self.b}

    def _ln(self, z, hp):
        mu = z.mean(-1, keepdim=True)
        var = z.var(-1, unbiased=False, keepdim=True)
        return (z - mu) / torch.sqrt(var + self.eps) * hp["w"] + hp["b"]

    def predict(self, st, k, hp):
        return self._ln(k @ st["W"] + st["b"], hp)

    def readout(self, st, q, hp):
        z = q @ st["W"] + st["b"]
        return z + self._ln(z, hp)


def squared_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * (pred - target).pow(2).sum()


TARGETS = {"v": lambda k, v: v, "v_minus_k": lambda k, v: v - k}
OPTIMIZERS = ("sgd", "muon")


def ttt(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    eta: torch.Tensor,
    *,
    model=None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = squared_loss,
    target: str | Callable = "v",
    optimizer: str = "sgd",
    mini_batch_size: int = 1,
    g: torch.Tensor | None = None,
    ns_steps: int = 5,
    ns_coefficients: str = "quintic",
    scale: float | None = None,
    initial_state=None,
    output_final_state: bool = False,
):
    """General TTT. ``q, k [b, t, h, d_k]``, ``v [b, t, h, d_v]``, ``eta [b, t, h]`` learning rates.

    ``model`` defaults to :class:`LinearModel`; ``initial_state`` is the model's state dict (or, for a
    single-tensor state, that tensor ``[b, h, d_k, d_v]``). Returns ``o [b, t, h, d_v]`` (and the final
    state in the same form when ``output_final_state``).
    """
    b, t, h, dk, dv = check_qkv(q, k, v)
    check_tensor("eta", eta, 3, "[batch, seq, heads]")
    if tuple(eta.shape) != (b, t, h):
        raise ValueError(f"eta must have shape {(b, t, h)} [batch, seq, heads], got {tuple(eta.shape)}")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_positive_int("mini_batch_size", mini_batch_size)
    g = check_log_decay(g, b, t, h)
    if g is not None and mini_batch_size != 1:
        raise ValueError("g (decoupled weight decay) is supported with mini_batch_size=1 only")
    if isinstance(target, str):
        check_choice("target", target, tuple(TARGETS))
        target = TARGETS[target]
    model = LinearModel() if model is None else model
    scale = dk**-0.5 if scale is None else float(scale)
    tensor_state = initial_state is None or isinstance(initial_state, torch.Tensor)
    if initial_state is None:
        st = model.init_state(b, h, dk, dv, q.device, acc(q).dtype)
    elif isinstance(initial_state, torch.Tensor):
        st = {"W": acc(initial_state)}
    else:
        st = {n: acc(s) for n, s in initial_state.items()}
    qs, k32, v32 = acc(q).transpose(1, 2) * scale, acc(k).transpose(1, 2), acc(v).transpose(1, 2)
    eta32 = acc(eta).transpose(1, 2)  # [b, h, t]
    # fixed per-head parameters [h, ...] of the model (e.g. a LayerNorm), vmapped along the heads
    heads = {n: x.to(q.device, acc(q).dtype) for n, x in model.head_params().items()}

    def tok_loss(s, kj, vj, hp):
        return loss(model.predict(s, kj, hp), target(kj, vj))

    def tok_read(s, qj, hp):
        return model.readout(s, qj, hp)

    g_tok = grad(tok_loss)
    # vmap over tokens (state shared), then heads, then batch
    per_tok = vmap(vmap(vmap(g_tok, in_dims=(None, 0, 0, None)), in_dims=(0, 0, 0, 0)), in_dims=(0, 0, 0, None))
    read = vmap(vmap(vmap(tok_read, in_dims=(0, 0, None)), in_dims=(0, 0, 0)), in_dims=(0, 0, None))

    outs = []
    for s0 in range(0, t, mini_batch_size):
        sl = slice(s0, min(t, s0 + mini_batch_size))
        if g is not None:
            st = {n: x * acc(g[:, s0]).exp().reshape(b, h, *([1] * (x.ndim - 2))) for n, x in st.items()}
        G = per_tok(st, k32[:, :, sl], v32[:, :, sl], heads)  # each [b, h, m, *param]
        P = {n: x.cumsum(2) for n, x in G.items()}
        if optimizer == "muon":
            P = {n: newton_schulz(x, ns_steps, ns_coefficients) if x.ndim >= 5 else x for n, x in P.items()}
        e = eta32[:, :, sl]
        W_t = {n: st[n].unsqueeze(2) - e.reshape(*e.shape, *([1] * (x.ndim - 3))) * x for n, x in P.items()}
        outs.append(read(W_t, qs[:, :, sl], heads))
        st = {n: x[:, :, -1] for n, x in W_t.items()}
    o = torch.cat(outs, dim=2).transpose(1, 2).to(v.dtype)
    if not output_final_state:
        return o
    final = st["W"] if tensor_state and set(st) == {"W"} else st
    return o, final
