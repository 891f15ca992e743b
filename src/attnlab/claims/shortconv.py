"""S4, S5: the short convolution on K (post 11320), decided by training over seeds."""

from __future__ import annotations

from ..train import RunMemo
from . import recipes
from .arms import any_capped, curve_figure, train_arms, training_note
from .decide import forest_figure, paired, verdict_of, verdict_with_caveat
from .registry import Budget, Evidence, Figure, experiment
from .seeds import fmt, seed_figure, stats

PLACEMENTS = ["", "q", "k", "v", "qk", "qv", "kv", "qkv"]
DECISIVE = ["", "q", "k", "v"]  # the placements the rule reads; a wide budget trains all of them
# minimum effects, fixed before the run (paired over seeds, Student-t 95% intervals; claims.decide)
S5_GAIN = 0.10  # MQAR accuracy: K conv over none
S5_OVER = 0.05  # MQAR accuracy: K conv over Q conv, and over V conv ("much less" than K)
S5_TEXT = 0.01  # nats/byte: K conv's text loss below none's
S4_DELTA = 0.10  # nats/token: the K conv lowers the tied model's excess loss by at least this


@experiment("S5", method="DeltaNet (2 layers, d = 64) trained on MQAR (vocab 64, 32 tokens, 4 pairs) with the short "
            "convolution on none/Q/K/V (the full budget adds QK/QV/KV/QKV), and on Shakespeare (byte LM) with "
            "none/Q/K/V; every setting "
            "over the budget's seeds; validation accuracy (MQAR) and loss (text). The full budget adds the same "
            "MQAR sweep for softmax and linear attention (reported beside the verdict).",
            tolerance=f"paired over seeds (t, 95%): on MQAR, K conv beats none by ≥ {S5_GAIN} accuracy and beats Q "
                      f"conv and V conv by ≥ {S5_OVER} each; on text, K conv's loss is ≥ {S5_TEXT} nats/byte below "
                      "none's. holds if all four are supported; caveat if the three MQAR ones are and text is not; "
                      "refuted if an MQAR one is contradicted; undecided otherwise")
def s5(budget: Budget, runs: RunMemo) -> Evidence:
    places = PLACEMENTS if budget.wide else DECISIVE
    accuracy = lambda r: r["valid"]["accuracy"]  # noqa: E731
    mq = train_arms(runs, {p: (lambda s, p=p: recipes.mqar("deltanet", s, budget, short_conv=p)) for p in places},
                    budget.seeds, family=["", "k"])
    acc = {p: stats(mq[p].values(accuracy)) for p in places}
    # the full budget also sweeps the placements for softmax and linear attention (reported, not judged; 3 seeds)
    others = {}
    for m in ("softmax", "linear_attn") if budget.wide else ():
        o = train_arms(runs, {p: (lambda s, p=p, m=m: recipes.mqar(m, s, budget, short_conv=p)) for p in places},
                       budget.seeds[:3], family=["", "k"])
        others[m] = {p or "none": stats(o[p].values(accuracy)) for p in places}
    tx = train_arms(runs, {p: (lambda s, p=p: recipes.text(f"text-deltanet-{p or 'none'}", s, budget, mixer="deltanet",
                                                          short_conv=p)) for p in ["", "q", "k", "v"]},
                    budget.seeds, family=["", "k"])
    lm = {p: stats(tx[p].values(lambda r: r["valid"]["loss"])) for p in tx}
    vals = lambda p: acc[p]["values"]  # noqa: E731  (seed order is the budget's in every arm)
    rivals = {"": ("none", S5_GAIN), "q": ("Q conv", S5_OVER), "v": ("V conv", S5_OVER)}
    mqar = [paired(f"MQAR: K conv beats {label}", vals("k"), vals(o), delta=delta, claimed="a > b",
                   capped=any_capped(mq["k"], mq[o])) for o, (label, delta) in rivals.items()]
    text = paired("text: K conv lowers loss vs none", lm["k"]["values"], lm[""]["values"], delta=S5_TEXT,
                  claimed="a < b", capped=any_capped(tx["k"], tx[""]))
    decisions = [*mqar, text]
    v = verdict_with_caveat(mqar, [text])
    name = lambda p: p.upper() or "none"  # noqa: E731
    reason = ("; ".join(d.text() for d in decisions) + f". MQAR: {training_note(mq)}; text: {training_note(tx)}. "
              "MQAR accuracy: " +
              ", ".join(f"{name(p)} {fmt(acc[p], 2)}" for p in places) +
              "; text loss (nats/byte): " + ", ".join(f"{name(p)} {fmt(lm[p])}" for p in lm))
    names = [name(p) for p in places]
    fig = Figure("MQAR accuracy by short-conv placement (mean ± sd over seeds)", "convolution on", "accuracy", [
        {"label": "DeltaNet", "x": list(range(len(places))), "y": [acc[p]["mean"] for p in places],
         "yerr": [acc[p]["std"] for p in places], "style": "o"}] + [
        {"label": m, "x": [i + 0.12 * (j + 1) for i in range(len(places))],
         "y": [r[p or "none"]["mean"] for p in places], "yerr": [r[p or "none"]["std"] for p in places],
         "style": "o"} for j, (m, r) in enumerate(others.items())], xticks=names)
    fig_lm = seed_figure("Byte LM on Shakespeare, DeltaNet", "validation loss (nats/byte)",
                         {name(p): lm[p] for p in lm})
    if others:
        reason += "; other mixers (MQAR, none→K): " + ", ".join(
            f"{m} {r['none']['mean']:.2f}→{r['k']['mean']:.2f}" for m, r in others.items())
    return Evidence(v, reason, {"mqar_accuracy": acc, "text_loss": lm, "other_mixers_mqar_accuracy": others,
                                "decisions": [d.to_json() for d in decisions],
                                "training": {"mqar": {p or "none": a.record() for p, a in mq.items()},
                                             "text": {p or "none": a.record() for p, a in tx.items()}}},
                    seeds=list(budget.seeds), figures=[forest_figure(decisions), fig, fig_lm,
                                                       curve_figure("MQAR validation loss, every seed", mq),
                                                       curve_figure("Text validation loss, every seed", tx)])


@experiment("S4", method="In-context Markov chains (a fresh sparse chain per sequence, vocab 16, 2 successors per "
            "token, 64 tokens), DeltaNet with K = V tied (one projection), with and without the K convolution; "
            "excess validation loss over the chains' entropy rate, over the budget's seeds.",
            tolerance=f"paired over seeds (t, 95%): holds if the K convolution lowers the excess loss by ≥ {S4_DELTA} "
                      "nats/token (supported), refuted if the interval lies below that (contradicted), undecided "
                      "otherwise")
def s4(budget: Budget, runs: RunMemo) -> Evidence:
    arms = train_arms(runs, {"none": lambda s: recipes.markov(s, budget),
                             "k": lambda s: recipes.markov(s, budget, short_conv="k")}, budget.seeds)
    res = {a: stats(arms[a].values(lambda r: r["valid"]["loss"] - r["optimum"])) for a in arms}
    d = paired("K conv lowers the excess loss", res["k"]["values"], res["none"]["values"], delta=S4_DELTA,
               claimed="a < b", capped=any_capped(*arms.values()))
    return Evidence(verdict_of([d]), f"{d.text()}; excess loss over the entropy rate (nats/token): tied K = V "
                    f"without conv {fmt(res['none'])}, with K conv {fmt(res['k'])}; {training_note(arms)}",
                    {"excess_loss": res, "decisions": [d.to_json()],
                     "training": {a: arm.record() for a, arm in arms.items()}}, seeds=list(budget.seeds),
                    figures=[seed_figure("Tied K = V on in-context Markov chains", "excess loss (nats/token)",
                                         {"no conv": res["none"], "K conv": res["k"]}, paired=True),
                             forest_figure([d]), curve_figure("Validation loss, every seed", arms)])
