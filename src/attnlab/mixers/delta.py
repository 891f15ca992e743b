"""The delta-rule family as mixers: DeltaNet, Gated DeltaNet, TTT and MesaNet (post 11320).

Defaults follow flash-linear-attention's layers: q and k go through SiLU then L2 normalisation,
``β = sigmoid(W_β x)`` (``allow_neg_eigval=True`` doubles it, so ``I − β k kᵀ`` can have negative
eigenvalues), the output is RMS-normalised per head (and gated for Gated DeltaNet). ``tie_kv=True``
uses one projection for keys and values — the "predict yourself" setting of claims S3 and S4: the
values are the shared projection without the K short convolution, so ``v = k`` unless ``"k"`` is in
``short_conv``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_choice, check_positive_int
from ..ops.delta import gated_delta_rule, implicit_matrix
from ..ops.delta_engines import BACKENDS, DEPRECATED_BACKENDS, resolve_backend_name
from ..ops.mesa import SOLVERS, mesa_net
from ..ops.norm import RMSNorm, silu_l2_normalize
from ..ops.ttt import OPTIMIZERS, ttt
from .base import Cache, Mixer, register_mixer

ACTIVATIONS = {"silu": F.silu, "relu": F.relu, "elu": lambda x: F.elu(x) + 1.0, "identity": lambda x: x}
NORMS = ("l2", "sum", "none")


class _DeltaFamily(Mixer):
    """Shared machinery for mixers whose output is linear in ``v`` given q, k and per-token gates.

    Args:
        qk_activation: ``"silu"`` (default), ``"relu"``, ``"elu"`` (elu+1) or ``"identity"``.
        qk_norm: ``"l2"`` (default), ``"sum"`` or ``"none"`` — without L2 the recurrence can blow up.
        allow_neg_eigval: ``β ∈ (0, 2)`` instead of ``(0, 1)``.
        tie_kv: one projection for keys and values (see the module docstring).
        output_norm: RMS-normalise each head's output (default True).
        output_gate: multiply by ``silu(W_g x)`` after the norm.
        chunk_size: chunk length of the chunkwise form.
        backend: the delta rules' engine (DeltaNet and Gated DeltaNet): ``"auto"`` (default: the
            fastest that can run each call), ``"native"`` (the compiled CPU kernel), ``"pytorch"`` or
            ``"fla"`` (flash-linear-attention's Triton kernels on a GPU); see
            :mod:`attnlab.ops.delta_engines`.
    """

    keeps_cache = True  # a KV cache or a recurrent state, filled in mix

    gated = False
    backends: tuple[str, ...] = BACKENDS

    def __init__(self, d_model, n_heads, *, qk_activation="silu", qk_norm="l2", allow_neg_eigval=False,
                 tie_kv=False, output_norm=True, output_gate=None, chunk_size=64, backend="auto", **kw):
        super().__init__(d_model, n_heads, **kw)
        if backend not in self.backends and backend in DEPRECATED_BACKENDS:
            backend = resolve_backend_name(backend)
        check_choice("backend", backend, self.backends)
        self.backend = backend
        check_choice("qk_activation", qk_activation, tuple(ACTIVATIONS))
        check_choice("qk_norm", qk_norm, NORMS)
        self.qk_activation, self.qk_norm = qk_activation, qk_norm
        self.allow_neg_eigval, self.tie_kv, self.chunk_size = bool(allow_neg_eigval), bool(tie_kv), int(chunk_size)
        if self.tie_kv:
            del self.v_proj  # values come from k_proj
        self.b_proj = nn.Linear(d_model, n_heads)
        self.output_gate = self.gated if output_gate is None else bool(output_gate)
        self.o_norm = RMSNorm(self.head_dim, eps=1e-5) if output_norm else None
        if self.output_gate:
            self.gate_proj = nn.Linear(d_model, n_heads * self.head_dim, bias=False)

    def _qk(self, x):
        if self.qk_activation == "silu" and self.qk_norm == "l2":  # the default, fused
            return silu_l2_normalize(x.float(), eps=1e-6)
        x = ACTIVATIONS[self.qk_activation](x.float())
        if self.qk_norm == "l2":
            return F.normalize(x, dim=-1, eps=1e-6)
        if self.qk_norm == "sum":
            return x / x.sum(-1, keepdim=True).abs().clamp_min(1e-6)
        return x

    def project(self, x, cache=None):
        if not self.tie_kv:
            f = super().project(x, cache)
            f["q"], f["k"] = self._qk(f["q"]), self._qk(f["k"])
            return f
        unflat = lambda y: y.unflatten(-1, (self.n_heads, self.head_dim))  # noqa: E731
        q = self.q_proj(x)
        if "q" in self.convs:
            q = self.convs["q"](q, cache, "conv_q")
        shared = self.k_proj(x)
        k = self.convs["k"](shared, cache, "conv_k") if "k" in self.convs else shared
        v = self.convs["v"](shared, cache, "conv_v") if "v" in self.convs else shared
        return {"q": self._qk(unflat(q)), "k": self._qk(unflat(k)), "v": self._qk(unflat(v))}

    def features(self, x, cache: Cache | None = None):
        f = self.project(x, cache)
        beta = torch.sigmoid(self.b_proj(x).float())
        f["beta"] = 2 * beta if self.allow_neg_eigval else beta
        f["g"] = self.log_decay(x)
        return f

    def log_decay(self, x):
        return None

    def _check_prefix(self, prefix_len):
        if prefix_len is not None:
            raise ValueError(f"prefix_len: the {self.name!r} mixer is causal and cannot look ahead into a prefix")

    def op(self, q, k, v, f, **kw):
        return gated_delta_rule(q, k, v, f["g"], f["beta"], chunk_size=self.chunk_size, backend=self.backend, **kw)

    def mix(self, f, cache, prefix_len=None):
        self._check_prefix(prefix_len)
        init = None if cache is None else cache.get("state")
        if cache is None:  # nothing reads the final state: the native kernel then skips its last update
            return self.op(f["q"], f["k"], f["v"].to(f["q"].dtype), f, initial_state=init)
        o, cache["state"] = self.op(f["q"], f["k"], f["v"].to(f["q"].dtype), f, initial_state=init,
                                    output_final_state=True)
        return o

    def matrix(self, f, prefix_len=None):
        self._check_prefix(prefix_len)
        return implicit_matrix(lambda q, k, v: self.op(q, k, v, f), f["q"], f["k"])

    def output(self, o, x):
        if self.o_norm is not None:
            o = self.o_norm(o.to(self.o_proj.weight.dtype))
        if self.output_gate:
            o = o * F.silu(self.gate_proj(x)).unflatten(-1, (self.n_heads, self.head_dim))
        return self.o_proj(o.flatten(-2).to(self.o_proj.weight.dtype))

    def extra_repr(self):
        return (f"{super().extra_repr()}, qk={self.qk_activation}+{self.qk_norm}, tie_kv={self.tie_kv}, "
                f"allow_neg_eigval={self.allow_neg_eigval}")


@register_mixer("deltanet")
class DeltaNet(_DeltaFamily):
    """DeltaNet (Yang et al. 2024, arXiv 2406.06484): ``S_t = (I − β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ``."""


@register_mixer("gated_deltanet")
class GatedDeltaNet(_DeltaFamily):
    """Gated DeltaNet (Yang et al. 2025, arXiv 2412.06464): a data-dependent decay ``α_t = exp(g_t)``
    in front of the delta rule, ``g_t = −exp(A_h) · softplus(W_a x_t + dt_bias)`` as in Mamba-2."""

    gated = True

    def __init__(self, d_model, n_heads, **kw):
        super().__init__(d_model, n_heads, **kw)
        self.a_proj = nn.Linear(d_model, n_heads, bias=False)
        self.A_log = nn.Parameter(torch.empty(n_heads).uniform_(0, 16).log())
        self.dt_bias = nn.Parameter(torch.empty(n_heads).uniform_(0.001, 0.1).log())  # softplus⁻¹-ish small steps

    def log_decay(self, x):
        return -self.A_log.float().exp() * F.softplus(self.a_proj(x).float() + self.dt_bias)


@register_mixer("ttt")
class TTT(_DeltaFamily):
    """Test-time training with a linear model (post 11320): the general :func:`attnlab.ops.ttt`.

    Args:
        base_lr: learning rate scale, ``η_t = base_lr · sigmoid(W_β x_t)``.
        mini_batch_size: tokens per TTT update (1: online SGD, which is DeltaNet).
        optimizer: ``"sgd"`` or ``"muon"`` (Newton–Schulz-orthogonalised updates, as LaCT).
    """

    backends = ("auto",)

    def __init__(self, d_model, n_heads, *, base_lr=1.0, mini_batch_size=1, optimizer="sgd", **kw):
        super().__init__(d_model, n_heads, **kw)
        check_choice("optimizer", optimizer, OPTIMIZERS)
        self.base_lr, self.mini_batch_size, self.optimizer = float(base_lr), int(mini_batch_size), optimizer

    def mix(self, f, cache, prefix_len=None):
        if cache is not None and self.mini_batch_size > 1:
            raise ValueError("cache: decoding token by token needs mini_batch_size=1 (a mini-batch updates at once)")
        return super().mix(f, cache, prefix_len)

    def matrix(self, f, prefix_len=None):
        if self.optimizer != "sgd":
            raise ValueError(f"attention_matrix: TTT with optimizer={self.optimizer!r} is not linear in v (Newton–Schulz "
                             "is nonlinear), so it has no implicit attention matrix")
        return super().matrix(f, prefix_len)

    def op(self, q, k, v, f, **kw):
        return ttt(q, k, v, self.base_lr * f["beta"], mini_batch_size=self.mini_batch_size, optimizer=self.optimizer,
                   **kw)


@register_mixer("mesanet")
class MesaNet(_DeltaFamily):
    """MesaNet (von Oswald et al. 2025, arXiv 2506.05233), exact or by CG steps:
    ``o_t = G_tᵀ (H_t + Λ)⁻¹ q_t`` with decayed ``H = Σ β k kᵀ``, ``G = Σ β k vᵀ``.

    Args:
        lamb_init: initial ridge ``Λ`` (a learnable positive vector per head, ``softplus``-parametrised).
        decay: learn a data-dependent decay (default True); False keeps all of the past.
        solver: ``"exact"`` (default) or ``"cg"``: ``cg_steps`` conjugate-gradient steps instead of the
            exact solve, as the paper trains it (``cg_steps = head_dim`` is exact up to rounding).
    """

    backends = ("auto",)

    def __init__(self, d_model, n_heads, *, lamb_init=1.0, decay=True, solver="exact", cg_steps=30, **kw):
        super().__init__(d_model, n_heads, **kw)
        if lamb_init <= 0:
            raise ValueError(f"lamb_init must be positive, got {lamb_init}")
        self.solver = check_choice("solver", solver, SOLVERS)
        self.cg_steps = check_positive_int("cg_steps", cg_steps)
        raw = torch.full((n_heads, self.head_dim), float(lamb_init)).expm1().log()  # softplus⁻¹
        self.lamb_raw = nn.Parameter(raw)
        self.decay = bool(decay)
        if self.decay:
            self.a_proj = nn.Linear(d_model, n_heads)

    def log_decay(self, x):
        if not self.decay:
            return None
        return F.logsigmoid(self.a_proj(x).float() + 4.0)  # starts near 1: long memory

    def lamb(self):
        return F.softplus(self.lamb_raw.float()) + 1e-4

    def op(self, q, k, v, f, **kw):
        return mesa_net(q, k, v, f["g"], f["beta"], self.lamb(), chunk_size=self.chunk_size, solver=self.solver,
                        cg_steps=self.cg_steps, **kw)
