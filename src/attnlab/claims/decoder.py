"""D2: rank of bidirectional versus causal softmax attention (posts 9529/9547)."""

from __future__ import annotations

import torch

from ..diagnostics import effective_rank, numerical_rank
from ..ops.attention import attention_probs
from .pretrained import WINDOW, real_stats
from .registry import Budget, Evidence, Figure, experiment

D2_RTOL = 1e-6  # float32's resolution: singular values below it are noise in any trained model
D2_LOW = 0.5
D2_RATIO = 64  # "n ≫ d" means n ≥ 64 d here


@experiment("D2", method="Random q, k ~ N(0, I_d), scores q·k/√d, n from 64 to 512, d from 2 to 64, in float64: "
            f"the causal diagonal (exact rank), the numerical rank (rtol {D2_RTOL}) and effective rank of the "
            "bidirectional and causal softmax matrices.",
            tolerance=f"refuted if a causal diagonal entry is 0 (random or SmolLM2); holds if moreover every causal "
                      "matrix is numerically "
                      f"full rank and the bidirectional numerical rank is below {D2_LOW}·n whenever n ≥ {D2_RATIO}d; "
                      "caveat otherwise")
def d2(budget: Budget) -> Evidence:
    rows = []
    for seed in budget.seeds:
        g = torch.Generator().manual_seed(seed)
        for n in (64, 128, 256, 512):
            for d in (2, 8, 32, 64):
                q = torch.randn(1, n, 1, d, generator=g, dtype=torch.float64)
                k = torch.randn(1, n, 1, d, generator=g, dtype=torch.float64)
                Pb = attention_probs(q, k, mask="bidirectional").double()[0, 0]
                Pc = attention_probs(q, k, mask="causal").double()[0, 0]
                rows.append({"seed": seed, "n": n, "d": d,
                             "bi_rank": int(numerical_rank(Pb, D2_RTOL)), "bi_eff": float(effective_rank(Pb)),
                             "causal_rank": int(numerical_rank(Pc, D2_RTOL)), "causal_eff": float(effective_rank(Pc)),
                             "causal_min_diag": float(Pc.diagonal().min()),
                             "causal_sigma_min": float(torch.linalg.svdvals(Pc)[-1])})
    smol, mini = real_stats("smollm2"), real_stats("minilm")
    exact_full = all(r["causal_min_diag"] > 0 for r in rows) and smol["causal_positive_diagonal"]
    num_full = [r["causal_rank"] == r["n"] for r in rows]
    far = [r for r in rows if r["n"] >= D2_RATIO * r["d"]]
    low = [r["bi_rank"] < D2_LOW * r["n"] for r in far]
    if not exact_full:
        v = "refuted"
    else:
        v = "holds" if all(num_full) and all(low) else "caveat"
    min_diag = min(r["causal_min_diag"] for r in rows)
    sig = max(r["causal_sigma_min"] for r in rows)
    diag = (f"every causal matrix has a positive diagonal (min {min_diag:.1e}), so it is exactly full rank" if exact_full
            else f"a causal diagonal entry is {min_diag:.1e}: not every causal matrix is exactly full rank")
    reason = (f"{diag}, but its "
              f"smallest singular value is ≤ {sig:.0e} and it is numerically full rank (rtol {D2_RTOL}) in only "
              f"{sum(num_full)}/{len(rows)} cases; bidirectional rank < {D2_LOW}·n in {sum(low)}/{len(far)} cases "
              f"with n ≥ {D2_RATIO}d (" + ", ".join(f"n={r['n']} d={r['d']}: {r['bi_rank']}" for r in far
                                                  if r["seed"] == budget.seeds[0]) + "); real weights: SmolLM2 "
              f"diagonals all positive: {smol['causal_positive_diagonal']}, numerical rank "
              f"{smol['summary']['num_rank_frac']:.3f}·t and effective rank {smol['summary']['eff_rank_frac']:.3f}·t; "
              f"MiniLM (bidirectional) {mini['summary']['num_rank_frac']:.3f}·t and "
              f"{mini['summary']['eff_rank_frac']:.3f}·t")
    s0 = [r for r in rows if r["seed"] == budget.seeds[0] and r["d"] == 2]
    ns = [r["n"] for r in s0]
    fig = Figure("Rank against n (d = 2)", "n", "rank", [
        {"label": "n", "x": ns, "y": ns, "style": ":"},
        {"label": f"causal numerical rank (rtol {D2_RTOL})", "x": ns, "y": [r["causal_rank"] for r in s0]},
        {"label": "causal effective rank", "x": ns, "y": [r["causal_eff"] for r in s0]},
        {"label": f"bidirectional numerical rank (rtol {D2_RTOL})", "x": ns, "y": [r["bi_rank"] for r in s0],
         "style": "--"},
        {"label": "bidirectional effective rank", "x": ns, "y": [r["bi_eff"] for r in s0], "style": "--"},
    ], logx=True, logy=True)
    real = {m: {"num_rank_frac": st["summary"]["num_rank_frac"], "eff_rank_frac": st["summary"]["eff_rank_frac"],
                "per_layer_num_rank_frac": [sum(L["num_rank_frac"]["mean"]) / len(L["num_rank_frac"]["mean"])
                                            for L in st["layers"]]} for m, st in (("smollm2", smol), ("minilm", mini))}
    real["smollm2"]["causal_positive_diagonal"] = smol["causal_positive_diagonal"]
    fig2 = Figure(f"Numerical rank / t per layer, real models (t = {WINDOW})", "layer", "rank / t", [
        {"label": m, "x": list(range(len(real[m]["per_layer_num_rank_frac"]))), "y": real[m]["per_layer_num_rank_frac"],
         "style": "o"} for m in real])
    return Evidence(v, reason, {"rows": rows, "real_weights": real}, seeds=list(budget.seeds), figures=[fig, fig2])
