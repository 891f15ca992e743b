"""C7: trained softmax attention concentrates where trained linear attention cannot (post 9889)."""

from __future__ import annotations

from ..diagnostics.trained import query_sparsity
from ..train import RunMemo, load_trained
from . import recipes
from .registry import Budget, Evidence, Figure, experiment, verdict
from .seeds import fmt, stats

MIXERS = ("softmax", "deltanet", "linear_attn")
STEPS = 500  # softmax needs about this many steps to solve this MQAR setting


@experiment("C7", method="Softmax attention, DeltaNet and linear attention (identity features), each 2 layers, "
            f"trained for {STEPS} steps on MQAR over the budget's seeds (no short convolution, so recall must come "
            "from the mixer); "
            "the ℓ1/ℓ2 sparsity S of the last layer's attention rows at the query positions (implicit matrices "
            "for the linear mixers, absolute values), and validation accuracy.",
            tolerance="holds if softmax has both the lowest mean S and the highest mean accuracy, and the linear "
                      "attention's S exceeds softmax's for every seed; caveat if the S order holds but not the "
                      "accuracy order")
def c7(budget: Budget, runs: RunMemo) -> Evidence:
    S, acc = {}, {}
    for m in MIXERS:
        rs = [runs.trained(recipes.mqar(m, s, budget, steps=STEPS)) for s in budget.seeds]
        acc[m] = stats([r["valid"]["accuracy"] for r in rs])
        S[m] = stats([query_sparsity(*load_trained(r["run_dir"])[:2]) for r in rs])
    s_order = min(S, key=lambda m: S[m]["mean"]) == "softmax" and S["linear_attn"]["min"] > S["softmax"]["max"]
    a_order = max(acc, key=lambda m: acc[m]["mean"]) == "softmax"
    v = "holds" if s_order and a_order else ("caveat" if s_order else verdict(False))
    reason = "; ".join(f"{m}: S {fmt(S[m])}, accuracy {fmt(acc[m], 2)}" for m in MIXERS)
    from .pretrained import real_stats

    real = {m: real_stats(m)["summary"]["sparsity"] for m in ("smollm2", "minilm")}
    reason += f"; real weights on Shakespeare (reported, not judged): S = {real['smollm2']:.3f} (SmolLM2), " \
              f"{real['minilm']:.3f} (MiniLM)"
    fig = Figure("Concentration vs recall on MQAR", "mean S at query rows (lower = sparser)", "accuracy", [
        {"label": m, "x": S[m]["values"], "y": acc[m]["values"], "style": "o"} for m in MIXERS])
    return Evidence(v, reason, {"sparsity": S, "accuracy": acc, "real_weights_sparsity": real},
                    seeds=list(budget.seeds), figures=[fig])
