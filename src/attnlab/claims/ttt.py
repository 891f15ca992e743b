"""S1–S3, S6: linear attention as test-time training (post 11320), decided by the ops themselves."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..ops.delta import delta_rule, gated_delta_rule
from ..ops.mesa import mesa_net
from ..ops.ttt import newton_schulz, ttt
from .registry import Budget, Evidence, Figure, experiment, verdict

EQ_TOL32 = 1e-5  # relative RMS, float32
EQ_TOL64 = 1e-12  # relative RMS, float64
S3_SLOPE = (0.8, 1.2)
S3_AT_SMALLEST = 1e-3


def _rel(a, b) -> float:
    return float((a - b).double().norm() / b.double().norm().clamp_min(1e-300))


def _inputs(seed, b=2, t=97, h=3, dk=16, dv=8, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, t, h, dk, generator=g, dtype=dtype)
    k = F.normalize(torch.randn(b, t, h, dk, generator=g, dtype=dtype), dim=-1)
    v = torch.randn(b, t, h, dv, generator=g, dtype=dtype)
    eta = torch.rand(b, t, h, generator=g, dtype=dtype)
    gate = F.logsigmoid(torch.randn(b, t, h, generator=g, dtype=dtype) + 2)
    return q, k, v, eta, gate


def _equivalence(budget: Budget, decay: bool) -> tuple[dict, bool]:
    worst = {"float32": 0.0, "float64": 0.0}
    for seed in budget.seeds:
        for dtype, name in ((torch.float32, "float32"), (torch.float64, "float64")):
            q, k, v, eta, gate = _inputs(seed, dtype=dtype)
            g = gate if decay else None
            o_t, S_t = ttt(q, k, v, eta, g=g, output_final_state=True)
            for mode in ("chunk", "recurrent"):
                o_d, S_d = gated_delta_rule(q, k, v, g, eta, mode=mode, chunk_size=16, output_final_state=True)
                worst[name] = max(worst[name], _rel(o_t, o_d), _rel(S_t, S_d))
    ok = worst["float32"] <= EQ_TOL32 and worst["float64"] <= EQ_TOL64
    return worst, ok


@experiment("S1", method="Run the general TTT engine (state = W of f(W; k) = Wᵀk, loss ½‖Wᵀk − v‖², gradients by "
            "autograd, one SGD step per token with learning rate η_t) and the delta rule with β = η (chunk and "
            "recurrent forms) on the same random inputs; compare outputs and final states.",
            tolerance=f"holds if the relative RMS gap is ≤ {EQ_TOL32} in float32 and ≤ {EQ_TOL64} in float64 for every "
                      "seed")
def s1(budget: Budget) -> Evidence:
    worst, ok = _equivalence(budget, decay=False)
    return Evidence(verdict(ok), f"TTT-SGD vs DeltaNet: max relative gap {worst['float32']:.1e} (float32), "
                    f"{worst['float64']:.1e} (float64)", worst, seeds=list(budget.seeds))


@experiment("S2", method="As S1, with a decoupled weight decay α_t = exp(g_t) applied to W before each SGD step "
            "(an L2 regulariser in its decoupled, AdamW-style form), against the gated delta rule.",
            tolerance=f"holds if the relative RMS gap is ≤ {EQ_TOL32} in float32 and ≤ {EQ_TOL64} in float64")
def s2(budget: Budget) -> Evidence:
    worst, ok = _equivalence(budget, decay=True)
    return Evidence(verdict(ok), f"TTT-SGD with decay vs Gated DeltaNet: max relative gap {worst['float32']:.1e} "
                    f"(float32), {worst['float64']:.1e} (float64), with the decay in its decoupled form",
                    worst, seeds=list(budget.seeds))


@experiment("S3", method="Exact MesaNet with K = V (keys L2-normalised, no decay, β ~ U(0, 1), d = 16, t = 128, "
            "float64): relative error ‖o_t − q_t‖/‖q_t‖ over tokens t ≥ 32 (H_t full rank) for λ from 1e-1 to 1e-6; "
            "the same for DeltaNet with K = V for contrast.",
            tolerance=f"holds if the error scales like λ (log-log slope in {S3_SLOPE}) and is below {S3_AT_SMALLEST} "
                      "at the smallest λ")
def s3(budget: Budget) -> Evidence:
    lams = [10.0**-e for e in range(1, 7)]
    errs = []
    for lam in lams:
        per_seed = []
        for seed in budget.seeds:
            q, k, _, eta, _ = _inputs(seed, b=1, t=128, h=2, dk=16, dv=16, dtype=torch.float64)
            o = mesa_net(q, k, k, None, eta, torch.full((2, 16), lam, dtype=torch.float64))
            per_seed.append(_rel(o[:, 32:], q[:, 32:]))
        errs.append(max(per_seed))
    slope = (math.log(errs[-1]) - math.log(errs[1])) / (math.log(lams[-1]) - math.log(lams[1]))
    q, k, _, eta, _ = _inputs(budget.seeds[0], b=1, t=128, h=2, dk=16, dv=16, dtype=torch.float64)
    delta_err = _rel(delta_rule(q, k, k, eta)[:, 32:], q[:, 32:])
    ok = S3_SLOPE[0] <= slope <= S3_SLOPE[1] and errs[-1] < S3_AT_SMALLEST
    return Evidence(verdict(ok), f"MesaNet with K = V: ‖o − q‖/‖q‖ = {errs[0]:.1e} at λ = 0.1 down to {errs[-1]:.1e} at "
                    f"λ = 1e-6 (slope {slope:.2f} in log λ): the layer returns its query; DeltaNet with K = V: "
                    f"{delta_err:.2f}, {delta_err / errs[-1]:.1e}× farther from q than MesaNet at λ = 1e-6",
                    {"lambda": lams, "rel_error": errs, "slope": slope, "deltanet_rel_error": delta_err},
                    seeds=list(budget.seeds),
                    figures=[Figure("MesaNet with K = V returns q", "λ", "‖o − q‖ / ‖q‖",
                                    [{"label": "MesaNet (exact)", "x": lams, "y": errs, "style": "o"},
                                     {"label": "∝ λ", "x": lams, "y": [errs[-1] * lam / lams[-1] for lam in lams],
                                      "style": ":"}], logx=True, logy=True)])


@experiment("S6", method="Instances of one TTT engine, each against a hand-written reference: mini-batch SGD "
            "(gradients at the batch start, η_t Σ_{j≤t} ∇ℓ_j) against an explicit loop; Muon-style updates "
            "(the polar factor of the summed gradient) with cubic Newton–Schulz against an SVD; the spectrum "
            "after Muon's quintic Newton–Schulz.",
            tolerance="holds if mini-batch SGD matches its loop to 1e-5 relative and Muon matches the SVD polar "
                      "factor to 1e-4 (the quintic NS spectrum is reported, not judged)")
def s6(budget: Budget) -> Evidence:
    b, t, h, d, m = 1, 24, 2, 4, 8
    q, k, v, eta, _ = _inputs(budget.seeds[0], b=b, t=t, h=h, dk=d, dv=d)
    scale = d**-0.5

    def loop(update):
        ref = torch.zeros(b, t, h, d)
        for hi in range(h):
            W0 = torch.zeros(d, d)
            for s0 in range(0, t, m):
                acc = torch.zeros(d, d)
                for j in range(s0, s0 + m):
                    acc = acc + torch.outer(k[0, j, hi], k[0, j, hi] @ W0 - v[0, j, hi])
                    Wt = W0 - eta[0, j, hi] * update(acc)
                    ref[0, j, hi] = (q[0, j, hi] * scale) @ Wt
                W0 = Wt
        return ref

    sgd_gap = _rel(ttt(q, k, v, eta, mini_batch_size=m), loop(lambda a: a))

    def polar(a):
        U, _, Vh = torch.linalg.svd(a)
        return U @ Vh

    ends = [s + m - 1 for s in range(0, t, m)]  # full-rank sums (m ≥ d) only: the polar factor is unique there
    muon = ttt(q, k, v, eta, mini_batch_size=m, optimizer="muon", ns_steps=60, ns_coefficients="cubic")
    muon_gap = _rel(muon[:, ends], loop(polar)[:, ends])
    G = torch.randn(16, 32, 32, generator=torch.Generator().manual_seed(budget.seeds[0]))
    sv = torch.linalg.svdvals(newton_schulz(G, steps=5))
    lo, hi = float(sv.min()), float(sv.max())
    ok = sgd_gap <= 1e-5 and muon_gap <= 1e-4
    return Evidence(verdict(ok), f"mini-batch SGD vs explicit loop: {sgd_gap:.1e}; Muon (cubic NS, 60 steps) vs SVD polar "
                    f"factor: {muon_gap:.1e}; Muon's quintic NS (5 steps) maps a Gaussian matrix's singular values into "
                    f"[{lo:.2f}, {hi:.2f}] (approximately orthogonal, not exactly)",
                    {"minibatch_sgd_gap": sgd_gap, "muon_vs_svd_gap": muon_gap, "quintic_sv_range": [lo, hi]},
                    seeds=[budget.seeds[0]])
