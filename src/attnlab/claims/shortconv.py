"""S4, S5: the short convolution on K (post 11320), decided by training over seeds."""

from __future__ import annotations

from ..train import RunMemo
from . import recipes
from .registry import Budget, Evidence, Figure, experiment, verdict
from .seeds import fmt, seed_figure, stats

PLACEMENTS = ["", "q", "k", "v", "qk", "qv", "kv", "qkv"]
S5_MQAR_GAIN = 0.5  # K conv must lift mean MQAR accuracy by at least this much over no conv
S5_SHARE = 0.8  # … and placements without K must stay below 0.8 × the K gain
S4_RATIO = 0.5


@experiment("S5", method="DeltaNet (2 layers, d = 64) trained on MQAR (vocab 64, 32 tokens, 4 pairs) with the short "
            "convolution on none/Q/K/V/QK/QV/KV/QKV, and on Shakespeare (byte LM) with none/Q/K/V; every setting "
            "over the budget's seeds; validation accuracy (MQAR) and loss (text). The full budget adds the same "
            "MQAR sweep for softmax and linear attention (reported beside the verdict).",
            tolerance=f"holds if on MQAR the K placement beats none by ≥ {S5_MQAR_GAIN} mean accuracy, every "
                      f"placement with K beats every placement without K, and Q or V alone gain < {S5_SHARE}× the K "
                      "gain; on text, K has the lowest mean loss among none/Q/K/V. caveat if only the MQAR half holds")
def s5(budget: Budget, runs: RunMemo) -> Evidence:
    acc = {p: stats([runs.trained(recipes.mqar("deltanet", s, budget, short_conv=p))["valid"]["accuracy"]
                     for s in budget.seeds]) for p in PLACEMENTS}
    # the full budget also sweeps the placements for softmax and linear attention (reported, not judged; 3 seeds)
    others = {m: {p or "none": stats([runs.trained(recipes.mqar(m, s, budget, short_conv=p))["valid"]["accuracy"]
                                      for s in budget.seeds[:3]])
                  for p in PLACEMENTS} for m in (("softmax", "linear_attn") if budget.train_scale > 1 else ())}
    lm = {p: stats([runs.trained(recipes.text(f"text-deltanet-{p or 'none'}", s, budget, mixer="deltanet",
                                              short_conv=p))["valid"]["loss"]
                    for s in budget.seeds]) for p in ["", "q", "k", "v"]}
    gain = {p: acc[p]["mean"] - acc[""]["mean"] for p in PLACEMENTS}
    with_k = [p for p in PLACEMENTS if "k" in p]
    without_k = [p for p in PLACEMENTS if "k" not in p]
    mqar_ok = (gain["k"] >= S5_MQAR_GAIN and min(acc[p]["min"] for p in with_k) > max(acc[p]["max"] for p in without_k)
               and max(gain["q"], gain["v"]) < S5_SHARE * gain["k"])
    lm_ok = min(lm, key=lambda p: lm[p]["mean"]) == "k"
    v = "holds" if mqar_ok and lm_ok else ("caveat" if mqar_ok else "refuted")
    name = lambda p: p.upper() or "none"  # noqa: E731
    reason = ("MQAR accuracy: " + ", ".join(f"{name(p)} {fmt(acc[p], 2)}" for p in PLACEMENTS) +
              "; text loss (nats/byte): " + ", ".join(f"{name(p)} {fmt(lm[p])}" for p in lm))
    names = [name(p) for p in PLACEMENTS]
    fig = Figure("MQAR accuracy by short-conv placement (mean ± sd over seeds)", "convolution on", "accuracy", [
        {"label": "DeltaNet", "x": list(range(len(PLACEMENTS))), "y": [acc[p]["mean"] for p in PLACEMENTS],
         "yerr": [acc[p]["std"] for p in PLACEMENTS], "style": "o"}] + [
        {"label": m, "x": [i + 0.12 * (j + 1) for i in range(len(PLACEMENTS))],
         "y": [r[p or "none"]["mean"] for p in PLACEMENTS], "yerr": [r[p or "none"]["std"] for p in PLACEMENTS],
         "style": "o"} for j, (m, r) in enumerate(others.items())], xticks=names)
    fig_lm = seed_figure("Byte LM on Shakespeare, DeltaNet", "validation loss (nats/byte)",
                         {name(p): lm[p] for p in lm})
    if others:
        reason += "; other mixers (MQAR, none→K): " + ", ".join(
            f"{m} {r['none']['mean']:.2f}→{r['k']['mean']:.2f}" for m, r in others.items())
    return Evidence(v, reason, {"mqar_accuracy": acc, "text_loss": lm, "other_mixers_mqar_accuracy": others},
                    seeds=list(budget.seeds), figures=[fig, fig_lm])


@experiment("S4", method="In-context Markov chains (a fresh sparse chain per sequence, vocab 16, 2 successors per "
            "token, 64 tokens), DeltaNet with K = V tied (one projection), with and without the K convolution; "
            "excess validation loss over the chains' entropy rate, over the budget's seeds.",
            tolerance=f"holds if the mean excess loss with the K convolution is below {S4_RATIO}× the mean without it "
                      "and every seed with K beats every seed without")
def s4(budget: Budget, runs: RunMemo) -> Evidence:
    res = {}
    for sc in ("", "k"):
        rs = [runs.trained(recipes.markov(s, budget, short_conv=sc)) for s in budget.seeds]
        res[sc or "none"] = stats([r["valid"]["loss"] - r["optimum"] for r in rs])
    ok = (res["k"]["mean"] < S4_RATIO * res["none"]["mean"] and res["k"]["max"] < res["none"]["min"])
    return Evidence(verdict(ok), f"excess loss over the entropy rate (nats/token): tied K = V without conv "
                    f"{fmt(res['none'])}, with K conv {fmt(res['k'])}", {"excess_loss": res}, seeds=list(budget.seeds),
                    figures=[seed_figure("Tied K = V on in-context Markov chains", "excess loss (nats/token)",
                                         {"no conv": res["none"], "K conv": res["k"]})])
