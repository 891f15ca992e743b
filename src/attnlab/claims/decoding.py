"""D1, D3, D4: decoder-only vs prefix-LM, mixed forward/backward attention, position from the causal mask
(posts 9529/9547), decided by training over seeds."""

from __future__ import annotations

import math
from dataclasses import replace

from ..train import RunMemo
from . import recipes
from .registry import Budget, Evidence, experiment, verdict
from .seeds import fmt, seed_figure, stats

PREFIX_TASK = replace(recipes.TEXT_TASK, prefix_len=64)  # 64 prefix + 64 continuation bytes
D1_MARGIN = 0.02  # nats/byte the decoder may lose and the claim still hold
D4_GAP_NATS = 0.5


def _losses(runs: RunMemo, name: str, budget: Budget, **kw) -> dict:
    return stats([runs.trained(recipes.text(name, s, budget, **kw))["valid"]["loss"] for s in budget.seeds])


@experiment("D1", method="Shakespeare bytes in windows of 128 = 64 prefix + 64 continuation. A decoder-only model "
            "(causal, trained on every token) and a prefix-LM (UniLM mask: bidirectional over the prefix, trained on "
            "the continuation, the only tokens it can predict) with the same parameters, data and steps; "
            "validation loss on the continuation, over the budget's seeds.",
            tolerance=f"holds if the decoder's mean continuation loss ≤ the prefix-LM's + {D1_MARGIN}; refuted otherwise")
def d1(budget: Budget, runs: RunMemo) -> Evidence:
    dec = _losses(runs, "d1-decoder", budget, task=replace(PREFIX_TASK, prefix_loss=True), mixer="softmax",
                  mode="decoder")
    pre = _losses(runs, "d1-prefix", budget, task=PREFIX_TASK, mixer="softmax", mode="prefix")
    ok = dec["mean"] <= pre["mean"] + D1_MARGIN
    return Evidence(verdict(ok), f"continuation loss (nats/byte): decoder-only {fmt(dec)}, prefix-LM {fmt(pre)} "
                    "(equal parameters and steps)", {"decoder": dec, "prefix_lm": pre}, seeds=list(budget.seeds),
                    figures=[seed_figure("Continuation loss at equal parameters and steps", "loss (nats/byte)",
                                         {"decoder-only": dec, "prefix-LM": pre})])


@experiment("D3", method="As D1's prefix-LM, with mixed forward/backward attention over the prefix (half of the "
            "heads left-to-right, half right-to-left, causal after) against the bidirectional prefix; validation "
            "continuation loss after the same steps (early: the claim is about training speed).",
            tolerance="holds if the mixed model's mean loss is lower and it wins on a majority of seeds")
def d3(budget: Budget, runs: RunMemo) -> Evidence:
    name = {"prefix": "d1-prefix", "fwd_bwd": "d3-fwd_bwd"}  # the bidirectional prefix-LM is D1's
    loss = {m: [runs.trained(recipes.text(name[m], s, budget, task=PREFIX_TASK, mixer="softmax",
                                          mode=m))["valid"]["loss"] for s in budget.seeds]
            for m in ("prefix", "fwd_bwd")}
    wins = sum(a < b for a, b in zip(loss["fwd_bwd"], loss["prefix"]))
    mix, bi = stats(loss["fwd_bwd"]), stats(loss["prefix"])
    ok = mix["mean"] < bi["mean"] and 2 * wins > len(budget.seeds)
    return Evidence(verdict(ok), f"continuation loss: mixed forward/backward {fmt(mix)}, bidirectional prefix "
                    f"{fmt(bi)}; mixed wins on {wins}/{len(budget.seeds)} seeds",
                    {"fwd_bwd": mix, "bidirectional_prefix": bi}, seeds=list(budget.seeds),
                    figures=[seed_figure("Continuation loss, seed by seed", "loss (nats/byte)",
                                         {"bidirectional prefix": bi, "mixed fwd/bwd": mix}, paired=True)])


@experiment("D4", method="(a) Emit each token's position index (random tokens, 32 positions, so only position "
            "information helps) with NoPE softmax models: causal vs bidirectional mask; validation loss against "
            "chance, log 32. (b) Byte LM on Shakespeare, causal, RoPE vs NoPE. Over the budget's seeds.",
            tolerance=f"holds if (a) bidirectional NoPE stays at chance (mean loss ≥ 0.95·log 32) while causal NoPE "
                      f"is ≥ {D4_GAP_NATS} nats below it, and (b) RoPE's mean LM loss is below NoPE's; caveat if only (a)")
def d4(budget: Budget, runs: RunMemo) -> Evidence:
    pos = {m: stats([runs.trained(recipes.position(m, s, budget))["valid"]["loss"] for s in budget.seeds])
           for m in ("decoder", "bidirectional")}
    lm = {r: _losses(runs, f"d4-lm-{'rope' if r else 'nope'}", budget, mixer="softmax", mixer_options={"rope": r})
          for r in (True, False)}
    chance = math.log(32)
    a_ok = pos["bidirectional"]["mean"] >= 0.95 * chance and \
        pos["decoder"]["mean"] <= pos["bidirectional"]["mean"] - D4_GAP_NATS
    b_ok = lm[True]["mean"] < lm[False]["mean"]
    v = "holds" if a_ok and b_ok else ("caveat" if a_ok else "refuted")
    return Evidence(v, f"position task loss (NoPE): causal {fmt(pos['decoder'])}, bidirectional "
                    f"{fmt(pos['bidirectional'])} (chance {chance:.3f}); LM loss: RoPE {fmt(lm[True])}, "
                    f"NoPE {fmt(lm[False])}", {"position_loss": pos, "lm_loss": {"rope": lm[True], "nope": lm[False]}},
                    seeds=list(budget.seeds), figures=[
                        seed_figure("(a) Position task, NoPE", "loss (nats)", {"causal": pos["decoder"],
                                    "bidirectional": pos["bidirectional"]}, hline=("chance, log 32", chance)),
                        seed_figure("(b) Byte LM, causal", "loss (nats/byte)", {"RoPE": lm[True], "NoPE": lm[False]})])
