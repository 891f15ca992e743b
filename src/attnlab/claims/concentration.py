"""C1–C6: can attention concentrate? (post 9889). Closed forms checked three ways."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..diagnostics import l1_l2_sparsity
from ..theory.sparsity import (
    decay_sparsity,
    decay_sparsity_exact,
    linear_sparsity_three_ways,
    sparsity_formula,
    sparsity_monte_carlo,
    sparsity_quadrature,
    sparsity_relu2_post,
)
from .registry import Budget, Evidence, Figure, experiment, verdict
from .seeds import vs

QUAD_REL = 1e-6
MC_SIGMAS = 5.0


def _three_way(kernel: str, points, budget: Budget) -> tuple[float, float, list]:
    """Max relative formula−quadrature gap and the max MC deviation in standard errors."""
    worst_quad, worst_mc, rows = 0.0, 0.0, []
    for b, g in points:
        f, q = sparsity_formula(kernel, b, g), sparsity_quadrature(kernel, b, g)
        mc = sparsity_monte_carlo(kernel, b, g, samples=budget.mc_samples, seed=1)
        worst_quad = max(worst_quad, abs(f - q) / max(q, 1e-300))
        z = abs(mc.value - f) / max(mc.stderr, 1e-12) if math.isfinite(mc.stderr) else 0.0
        worst_mc = max(worst_mc, z)
        rows.append({"beta": b, "gamma": g, "formula": f, "quadrature": q, "mc": mc.value, "mc_stderr": mc.stderr})
    return worst_quad, worst_mc, rows


def _curve_figure(kernel, betas, title):
    gs = list(np.linspace(0.05, 4, 60))
    series = [{"label": f"β = {b}", "x": gs, "y": [sparsity_formula(kernel, b, g) for g in gs]} for b in betas]
    return Figure(title, "γ = σ‖q‖", "S", series)


@experiment("C1", method="S on hand-set vectors (constant, one-hot, k-hot) and on random signed vectors.",
            tolerance="holds if S(constant) = 1, S(one-hot) = 1/√n, S(k-hot) = √(k/n) to 1e-12, and every random S "
                      "lies in (0, 1]")
def c1(budget: Budget) -> Evidence:
    n = 64
    const = float(l1_l2_sparsity(torch.ones(n)))
    one = torch.zeros(n)
    one[3] = 5.0
    onehot = float(l1_l2_sparsity(one))
    khot = float(l1_l2_sparsity(torch.tensor([1.0] * 16 + [0.0] * 48)))
    rnd = l1_l2_sparsity(torch.randn(1000, n, generator=torch.Generator().manual_seed(0)) ** 3)
    ok = (abs(const - 1) < 1e-12 and abs(onehot - n**-0.5) < 1e-12 and abs(khot - 0.5) < 1e-12
          and bool((rnd > 0).all()) and bool((rnd <= 1).all()))
    gap = max(abs(const - 1), abs(onehot - n**-0.5), abs(khot - 0.5))
    return Evidence(verdict(ok), f"S(constant) = {const:.3f}, S(one-hot, n=64) = {onehot:.4f} (1/8), S(16-hot) = "
                    f"{khot:.3f} (1/2): largest gap {vs(gap, 1e-12, '.1e')}; random signed rows in "
                    f"[{float(rnd.min()):.3f}, {float(rnd.max()):.3f}] (" + ("inside" if bool((rnd > 0).all()) and
                                                                             bool((rnd <= 1).all()) else "outside")
                    + " (0, 1])",
                    {"constant": const, "one_hot": onehot, "k_hot": khot})


@experiment("C2", method="S for f = exp: closed form, quadrature of the expectations, Monte Carlo over sampled keys.",
            tolerance=f"holds if formula and quadrature agree within {QUAD_REL} relative and Monte Carlo within "
                      f"{MC_SIGMAS} standard errors (γ ≤ 1.5, where Monte Carlo is reliable), and S(γ = 6) < 1e-7")
def c2(budget: Budget) -> Evidence:
    pts = [(0.0, g) for g in (0.1, 0.5, 1.0, 1.5)] + [(2.0, 1.0)]
    wq, wm, rows = _three_way("exp", pts, budget)
    tail = sparsity_formula("exp", 0.0, 6.0)
    ok = wq < QUAD_REL and wm < MC_SIGMAS and tail < 1e-7
    return Evidence(verdict(ok), f"formula vs quadrature: max rel. gap {vs(wq, QUAD_REL, '.1e')}; Monte Carlo "
                    f"{vs(wm, MC_SIGMAS, '.1f')} s.e.; S(γ = 6) = {vs(tail, 1e-7, '.1e')} → 0",
                    {"rows": rows, "S_gamma6": tail},
                    figures=[_curve_figure("exp", [0.0], "S for f = exp")])


@experiment("C3", method="S for f = relu²: our stable closed form, the post's printed erf formula, quadrature, Monte "
            "Carlo; then the limit γ → 0 (a scan down to γ = 0.05) for β < 0 and the minimum over γ for β ≥ 0.",
            tolerance=f"holds if the forms agree ({QUAD_REL} rel., MC within {MC_SIGMAS} s.e.), S < 1e-3 is reached "
                      "in the γ → 0 scan for β = −1, and S ≥ 0.4 for every β ≥ 0 and γ in [0.05, 20]")
def c3(budget: Budget) -> Evidence:
    pts = [(-1.0, 1.0), (-0.5, 2.0), (0.0, 1.0), (1.0, 0.5), (2.0, 3.0)]
    wq, wm, rows = _three_way("relu2", pts, budget)
    post_gap = max(abs(sparsity_relu2_post(b, g) - sparsity_formula("relu2", b, g)) for b, g in pts)
    neg = min(sparsity_formula("relu2", -1.0, g) for g in np.geomspace(0.05, 2, 30))
    pos_min = min(sparsity_formula("relu2", b, g) for b in (0.0, 0.5, 2.0) for g in np.linspace(0.05, 20, 200))
    ok = wq < QUAD_REL and wm < MC_SIGMAS and post_gap < 1e-9 and neg < 1e-3 and pos_min >= 0.4
    return Evidence(verdict(ok), f"forms: quadrature {vs(wq, QUAD_REL, '.1e')}, post's formula "
                    f"{vs(post_gap, 1e-9, '.1e')}, MC {vs(wm, MC_SIGMAS, '.1f')} s.e.; min S(β=−1) over γ ≥ 0.05 = "
                    f"{vs(neg, 1e-3, '.1e')}; min S over β ≥ 0 = {vs(pos_min, 0.4, '.3f')}",
                    {"rows": rows, "S_negative_beta": neg, "min_S_nonneg_beta": pos_min},
                    figures=[_curve_figure("relu2", [-2, -1, 0, 1, 2], "S for f = relu² (post 9889, fig. 1)")])


@experiment("C4", method="S for f = identity: closed form vs quadrature vs Monte Carlo; evenness in β; the minimum over "
            "a (β, γ) grid.",
            tolerance="holds if the forms agree, S(β) = S(−β) to 1e-12 and min S ≥ √(2/π) − 1e-9 (bounded away from 0)")
def c4(budget: Budget) -> Evidence:
    pts = [(-2.0, 1.0), (0.0, 1.0), (0.5, 3.0), (3.0, 0.5)]
    wq, wm, rows = _three_way("identity", pts, budget)
    grid = [(b, g) for b in np.linspace(-5, 5, 41) for g in np.geomspace(0.01, 100, 41)]
    even = max(abs(sparsity_formula("identity", b, g) - sparsity_formula("identity", -b, g)) for b, g in grid)
    smin = min(sparsity_formula("identity", b, g) for b, g in grid)
    ok = wq < QUAD_REL and wm < MC_SIGMAS and even < 1e-12 and smin >= math.sqrt(2 / math.pi) - 1e-9
    return Evidence(verdict(ok), f"forms: quadrature {vs(wq, QUAD_REL, '.1e')}, MC {vs(wm, MC_SIGMAS, '.1f')} s.e.; "
                    f"evenness error {vs(even, 1e-12, '.1e')}; min S = {vs(smin, math.sqrt(2 / math.pi) - 1e-9, '.10f')} "
                    "(√(2/π) − 1e-9)",
                    {"rows": rows, "min_S": smin, "even_error": even},
                    figures=[_curve_figure("identity", [0, 0.5, 1, 2, 4], "S for f = identity (post 9889, fig. 2)")])


@experiment("C5", method="Non-negative linear attention (relu, elu+1, exp, softplus feature maps), keys N(μ, σ²I): "
            "the formula with μ̃, Σ̃ by quadrature, the i.i.d. form, and Monte Carlo.",
            tolerance=f"holds if Monte Carlo is within {MC_SIGMAS} s.e. of the formula for every map and the i.i.d. "
                      "form equals the general one when μ is constant (1e-9)")
def c5(budget: Budget) -> Evidence:
    rng = np.random.default_rng(0)
    q = rng.standard_normal(8)
    res, worst, iid = {}, 0.0, 0.0
    for fmap in ("relu", "elu1", "exp", "softplus"):
        r = linear_sparsity_three_ways(fmap, q, np.full(8, 0.2), 1.0, samples=budget.mc_samples, seed=1)
        r2 = linear_sparsity_three_ways(fmap, q, rng.standard_normal(8), 0.7, samples=budget.mc_samples, seed=2)
        worst = max(worst, abs(r["monte_carlo"] - r["formula"]) / r["monte_carlo_stderr"],
                    abs(r2["monte_carlo"] - r2["formula"]) / r2["monte_carlo_stderr"])
        iid = max(iid, abs(r["formula"] - r["formula_iid"]))
        res[fmap] = {"iid_mu": r, "general_mu": r2}
    ok = worst < MC_SIGMAS and iid < 1e-9
    txt = ", ".join(f"{k} {v['iid_mu']['formula']:.3f}" for k, v in res.items())
    return Evidence(verdict(ok), f"S per feature map (constant μ): {txt}; MC {vs(worst, MC_SIGMAS, '.1f')} s.e.; "
                    f"i.i.d. form vs general {vs(iid, 1e-9, '.1e')}", res)


C6_SLOPE_TOL = 0.01


@experiment("C6", method="Decay weights (λ^{n−1}, …, 1): the closed form against the direct sum, n from 1 to 10⁶; "
            "the log-log slope of S against n over n in [10⁵, 10⁶].",
            tolerance=f"holds if they agree within 1e-9 relative and S decays like n^(−1/2) (slope within "
                      f"{C6_SLOPE_TOL} of −0.5) for λ ≤ 0.99, so S → 0")
def c6(budget: Budget) -> Evidence:
    ns = [int(x) for x in np.unique(np.geomspace(1, 1e6, 40).astype(int))]
    lams = [0.5, 0.9, 0.99, 0.999]
    worst = max(abs(decay_sparsity(l, n) - decay_sparsity_exact(l, n)) / decay_sparsity_exact(l, n)
                for l in lams for n in ns)
    tail = {str(l): decay_sparsity(l, 10**6) for l in lams}
    slopes = {str(l): math.log(decay_sparsity(l, 10**6) / decay_sparsity(l, 10**5)) / math.log(10) for l in lams}
    ok = worst < 1e-9 and all(abs(slopes[str(l)] + 0.5) < C6_SLOPE_TOL for l in (0.5, 0.9, 0.99))
    return Evidence(verdict(ok), f"formula vs direct sum: max rel. gap {vs(worst, 1e-9, '.1e')}; S at n = 10⁶: " +
                    ", ".join(f"λ={k}: {v:.4f} (slope {slopes[k]:+.3f}, |slope + 0.5| "
                              f"{vs(abs(slopes[k] + 0.5), C6_SLOPE_TOL, '.4f')})" for k, v in tail.items()),
                    {"max_rel_gap": worst, "S_at_1e6": tail, "slope_1e5_1e6": slopes},
                    figures=[Figure("Decay sparsity against n", "n", "S", [
                        {"label": f"λ = {l}", "x": ns, "y": [decay_sparsity(l, n) for n in ns]} for l in lams],
                        logx=True)])
