"""D1, D3, D4: decoder-only vs prefix-LM, mixed forward/backward attention, position from the causal mask
(posts 9529/9547); I1: scores initialised too large (post 9593). All decided by training over seeds."""

from __future__ import annotations

import math

import torch

from ..diagnostics import row_entropy
from .registry import Budget, Evidence, Figure, experiment, verdict
from .shortconv import mqar_cfg, text_cfg
from .training import fmt, seed_figure, stats, trained

PREFIX = {"prefix_len": 64}
D1_MARGIN = 0.02  # nats/byte the decoder may lose and the claim still hold
D4_GAP_NATS = 0.5


def _losses(name, budget, model, task):
    return stats([trained(text_cfg(name, s, budget, model, task))["valid"]["loss"] for s in budget.seeds])


@experiment("D1", method="Shakespeare bytes in windows of 128 = 64 prefix + 64 continuation. A decoder-only model "
            "(causal, trained on every token) and a prefix-LM (UniLM mask: bidirectional over the prefix, trained on "
            "the continuation, the only tokens it can predict) with the same parameters, data and steps; "
            "validation loss on the continuation, over the budget's seeds.",
            tolerance=f"holds if the decoder's mean continuation loss ≤ the prefix-LM's + {D1_MARGIN}; refuted otherwise")
def d1(budget: Budget) -> Evidence:
    dec = _losses("d1-decoder", budget, {"mixer": "softmax", "mode": "decoder"}, {**PREFIX, "prefix_loss": True})
    pre = _losses("d1-prefix", budget, {"mixer": "softmax", "mode": "prefix"}, PREFIX)
    ok = dec["mean"] <= pre["mean"] + D1_MARGIN
    return Evidence(verdict(ok), f"continuation loss (nats/byte): decoder-only {fmt(dec)}, prefix-LM {fmt(pre)} "
                    "(equal parameters and steps)", {"decoder": dec, "prefix_lm": pre}, seeds=list(budget.seeds),
                    figures=[seed_figure("Continuation loss at equal parameters and steps", "loss (nats/byte)",
                                         {"decoder-only": dec, "prefix-LM": pre})])


@experiment("D3", method="As D1's prefix-LM, with mixed forward/backward attention over the prefix (half of the "
            "heads left-to-right, half right-to-left, causal after) against the bidirectional prefix; validation "
            "continuation loss after the same steps (early: the claim is about training speed).",
            tolerance="holds if the mixed model's mean loss is lower and it wins on a majority of seeds")
def d3(budget: Budget) -> Evidence:
    name = {"prefix": "d1-prefix", "fwd_bwd": "d3-fwd_bwd"}  # the bidirectional prefix-LM is D1's
    runs = {m: [trained(text_cfg(name[m], s, budget, {"mixer": "softmax", "mode": m}, PREFIX))["valid"]["loss"]
                for s in budget.seeds] for m in ("prefix", "fwd_bwd")}
    wins = sum(a < b for a, b in zip(runs["fwd_bwd"], runs["prefix"]))
    mix, bi = stats(runs["fwd_bwd"]), stats(runs["prefix"])
    ok = mix["mean"] < bi["mean"] and 2 * wins > len(budget.seeds)
    return Evidence(verdict(ok), f"continuation loss: mixed forward/backward {fmt(mix)}, bidirectional prefix "
                    f"{fmt(bi)}; mixed wins on {wins}/{len(budget.seeds)} seeds",
                    {"fwd_bwd": mix, "bidirectional_prefix": bi}, seeds=list(budget.seeds),
                    figures=[seed_figure("Continuation loss, seed by seed", "loss (nats/byte)",
                                         {"bidirectional prefix": bi, "mixed fwd/bwd": mix}, paired=True)])


def _pos_cfg(mode, seed, budget):
    return {"name": f"d4-position-{mode}", "seed": seed,
            "task": {"name": "positional", "kind": "position", "vocab_size": 32, "seq_len": 32, "num_train": 5000,
                     "num_valid": 256},
            "model": {"d_model": 64 * budget.model_scale, "n_layers": 2, "n_heads": 2, "mixer": "softmax", "mode": mode,
                      "mixer_options": {"rope": False}},
            "steps": 300 * budget.train_scale, "batch_size": 32, "lr": 3e-3, "warmup": 20,
            "eval_every": 300 * budget.train_scale, "eval_batches": 8}


@experiment("D4", method="(a) Emit each token's position index (random tokens, 32 positions, so only position "
            "information helps) with NoPE softmax models: causal vs bidirectional mask; validation loss against "
            "chance, log 32. (b) Byte LM on Shakespeare, causal, RoPE vs NoPE. Over the budget's seeds.",
            tolerance=f"holds if (a) bidirectional NoPE stays at chance (mean loss ≥ 0.95·log 32) while causal NoPE "
                      f"is ≥ {D4_GAP_NATS} nats below it, and (b) RoPE's mean LM loss is below NoPE's; caveat if only (a)")
def d4(budget: Budget) -> Evidence:
    pos = {m: stats([trained(_pos_cfg(m, s, budget))["valid"]["loss"] for s in budget.seeds])
           for m in ("decoder", "bidirectional")}
    lm = {r: _losses(f"d4-lm-{'rope' if r else 'nope'}", budget, {"mixer": "softmax", "mixer_options": {"rope": r}},
                     None) for r in (True, False)}
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


I1_SCALES = (1.0, 4.0, 16.0)
I1_STEPS = 500


@experiment("I1", method="Softmax models on MQAR whose q and k projections start ×1, ×4 and ×16 larger (scores ×1, "
            "×16, ×256): the attention entropy at initialisation (mean over rows, first layer) and the validation "
            f"accuracy after the same training ({I1_STEPS} steps), over the budget's seeds.",
            tolerance="holds if the entropy at init falls with the scale to below 0.5 nats at ×16 and the ×16 "
                      "models end with a lower mean accuracy than ×1, below 0.5")
def i1(budget: Budget) -> Evidence:
    H0, acc = {}, {}
    for sc in I1_SCALES:
        runs = [trained(mqar_cfg("softmax", "", s, budget, steps=I1_STEPS, qk_init_scale=sc)) for s in budget.seeds]
        acc[sc] = stats([r["valid"]["accuracy"] for r in runs])
        hs = []
        for s in budget.seeds:
            from ..train import make_config
            from ..train.loop import build_model

            model, data = build_model(make_config(mqar_cfg("softmax", "", s, budget, steps=I1_STEPS, qk_init_scale=sc)))
            x, _ = next(data.eval_batches(32, 1))
            P = model.attention_matrices(x)[0]
            hs.append(float(row_entropy(P, torch.ones_like(P[0, 0], dtype=torch.bool).tril())[..., 1:].mean()))
        H0[sc] = stats(hs)
    ok = H0[16.0]["mean"] < 0.5 and H0[1.0]["mean"] > H0[4.0]["mean"] > H0[16.0]["mean"] and \
        acc[16.0]["mean"] < min(0.5, acc[1.0]["mean"])
    ln = math.log(32)
    reason = "; ".join(f"×{sc:g}: entropy at init {fmt(H0[sc], 2)} nats (log n ≤ {ln:.2f}), accuracy "
                       f"{fmt(acc[sc], 2)}" for sc in I1_SCALES)
    fig = Figure("Initial score scale: entropy at init and final accuracy", "q/k init multiplier", "value", [
        {"label": "entropy at init (nats)", "x": list(I1_SCALES), "y": [H0[s]["mean"] for s in I1_SCALES]},
        {"label": "final accuracy", "x": list(I1_SCALES), "y": [acc[s]["mean"] for s in I1_SCALES]}], logx=True)
    return Evidence(verdict(ok), reason, {"entropy_at_init": {str(k): v for k, v in H0.items()},
                                          "accuracy": {str(k): v for k, v in acc.items()}},
                    seeds=list(budget.seeds), figures=[fig])
