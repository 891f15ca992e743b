"""C7: trained softmax attention concentrates where trained linear attention cannot (post 9889)."""

from __future__ import annotations

import torch

from ..diagnostics import l1_l2_sparsity
from ..tasks import IGNORE
from ..train import load_trained
from .registry import Budget, Evidence, Figure, experiment, verdict
from .shortconv import mqar_cfg
from .training import fmt, stats, trained

MIXERS = ("softmax", "deltanet", "linear_attn")
STEPS = 500  # softmax needs about this many steps to solve this MQAR setting


def query_sparsity(model, data, n_batches: int = 2) -> float:
    """Mean ℓ1/ℓ2 sparsity S of the last layer's (real or implicit) attention rows at query positions."""
    vals = []
    for x, y in data.eval_batches(64, n_batches):
        A = model.attention_matrices(x)[-1].abs()  # [b, h, t, t]; implicit matrices can be signed
        t = A.shape[-1]
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        S = l1_l2_sparsity(A, causal)  # [b, h, t]
        q = (y != IGNORE)[:, None, :].expand_as(S)
        vals.append(S[q])
    return float(torch.cat(vals).mean())


@experiment("C7", method="Softmax attention, DeltaNet and linear attention (identity features), each 2 layers, "
            f"trained for {STEPS} steps on MQAR over the budget's seeds (no short convolution, so recall must come "
            "from the mixer); "
            "the ℓ1/ℓ2 sparsity S of the last layer's attention rows at the query positions (implicit matrices "
            "for the linear mixers, absolute values), and validation accuracy.",
            tolerance="holds if softmax has both the lowest mean S and the highest mean accuracy, and the linear "
                      "attention's S exceeds softmax's for every seed; caveat if the S order holds but not the "
                      "accuracy order")
def c7(budget: Budget) -> Evidence:
    S, acc = {}, {}
    for m in MIXERS:
        runs = [trained(mqar_cfg(m, "", s, budget, steps=STEPS)) for s in budget.seeds]
        acc[m] = stats([r["valid"]["accuracy"] for r in runs])
        S[m] = stats([query_sparsity(*load_trained(r["run_dir"])[:2]) for r in runs])
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
