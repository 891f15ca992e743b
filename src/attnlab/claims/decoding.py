"""D1, D3, D4: decoder-only vs prefix-LM, mixed forward/backward attention, position from the causal mask
(posts 9529/9547), decided by training over seeds."""

from __future__ import annotations

import math
from dataclasses import replace

from ..train import RunMemo
from . import recipes
from .arms import Arm, any_capped, curve_figure, mean_curve_loss, robust, train_arms, training_note
from .decide import forest_figure, noninferior, paired, verdict_of, verdict_with_caveat
from .registry import Budget, Evidence, experiment
from .seeds import fmt, seed_figure, stats

PREFIX_TASK = replace(recipes.TEXT_TASK, prefix_len=64)  # 64 prefix + 64 continuation bytes
# minimum effects and margins, fixed before the run (paired over seeds, Student-t 95%; claims.decide)
D1_MARGIN = 0.02  # nats/byte the decoder may lose and still be "at least as good" (non-inferiority)
D3_DELTA = 0.01  # nats/byte: mixed forward/backward must lower the loss by at least this
D4_CONTROL = 1.0  # nats below chance the positive control must reach for the position task to test anything
# the task asks for the exact index among 32; knowing one's position to within ±6 (13 equally likely
# indices, log 13 ≈ 2.56 nats) recovers about a quarter of a perfect control's gain over chance (log 32 ≈ 3.47)
D4_LEARNS = 0.25
D4_MARGIN = 0.05
D4_LM_DELTA = 0.01  # nats/byte: RoPE below NoPE on the byte LM


def loss(r: dict) -> float:
    return r["valid"]["loss"]


def _text_arms(runs: RunMemo, budget: Budget, arms: dict[str, tuple[str, dict]]) -> dict[str, Arm]:
    """``{arm: (run name, recipe keywords)}`` → trained arms sharing one family pilot."""
    makers = {a: (lambda s, n=n, kw=kw: recipes.text(n, s, budget, **kw)) for a, (n, kw) in arms.items()}
    return train_arms(runs, makers, budget, family=list(arms))


def parameters_clause(arms: dict[str, Arm]) -> str:
    """Whether the arms' runs have one parameter count between them, with it (read from the runs, not assumed:
    the comparison is at equal parameters only if they do)."""
    counts = {a: sorted({r["params"] for r in arm.runs}) for a, arm in arms.items()}
    every = {n for c in counts.values() for n in c}
    if len(every) == 1:
        return f"equal parameters: {every.pop():,} in every run"
    return "parameters differ: " + ", ".join(f"{a} {'/'.join(f'{n:,}' for n in c)}" for a, c in counts.items())


WHY_D1 = (
    'A decoder trained on every token sees twice the labels of a prefix-LM trained on the continuation; '
    "the equal-supervision decoder makes the mask the only difference. 'At least as good' is a "
    'non-inferiority claim, so the rule has a margin, not a difference to reach.'
)


@experiment("D1", why=WHY_D1,
            method="Shakespeare bytes in windows of 128 = 64 prefix + 64 continuation. A prefix-LM (UniLM mask: "
            "bidirectional over the prefix, trained on the continuation, the only tokens it can predict) against two "
            "decoder-only models with the same parameters and data: one trained on the continuation only (the "
            "prefix-LM's supervision: only the mask differs) and one trained on every token (twice the training "
            "signal, reported). Validation loss on the continuation, over the budget's seeds.",
            tolerance=f"non-inferiority, paired over seeds (t, 95%), on the equal-supervision comparison: holds if "
                      f"the interval of (prefix-LM − decoder) loss lies above −{D1_MARGIN} nats/byte, refuted if it "
                      f"lies below −{D1_MARGIN}, undecided otherwise; the every-token decoder is reported beside")
def d1(budget: Budget, runs: RunMemo) -> Evidence:
    arms = _text_arms(runs, budget, {
        "decoder": ("d1-decoder-cont", dict(task=PREFIX_TASK, mixer="softmax", mode="decoder")),
        "decoder, every token": ("d1-decoder", dict(task=replace(PREFIX_TASK, prefix_loss=True), mixer="softmax",
                                                    mode="decoder")),
        "prefix-LM": ("d1-prefix", dict(task=PREFIX_TASK, mixer="softmax", mode="prefix"))})
    dec, every, pre = (stats(arms[a].values(loss)) for a in ("decoder", "decoder, every token", "prefix-LM"))
    d = noninferior("decoder (equal supervision) at least as good as the prefix-LM", dec["values"], pre["values"],
                    delta=D1_MARGIN, claimed="a < b", **robust(arms["decoder"], arms["prefix-LM"], loss))
    d_every = noninferior("decoder (every token) at least as good as the prefix-LM", every["values"], pre["values"],
                          delta=D1_MARGIN, claimed="a < b",
                          **robust(arms["decoder, every token"], arms["prefix-LM"], loss))
    return Evidence(verdict_of([d]), f"{d.text()}; reported: {d_every.text()}; continuation loss (nats/byte): "
                    f"decoder-only {fmt(dec)} (every token: {fmt(every)}), prefix-LM {fmt(pre)} "
                    f"({parameters_clause(arms)}); "
                    f"{training_note(arms)}",
                    {"decoder": dec, "decoder_every_token": every, "prefix_lm": pre,
                     "decisions": [d.to_json(), d_every.to_json()],
                     "training": {a: arm.record() for a, arm in arms.items()}}, seeds=list(budget.seeds),
                    figures=[seed_figure("Continuation loss at equal parameters", "loss (nats/byte)",
                                         {"decoder": dec, "decoder, every token": every, "prefix-LM": pre},
                                         paired=True), forest_figure([d, d_every]),
                             curve_figure("Validation loss, every seed", arms)])


WHY_D3 = (
    'The claim is about training speed; the mean validation loss over the window both arms trained (the '
    'area under the curve per step) measures it from the kept curves, paired by seed; the final loss is '
    'reported.'
)


@experiment("D3", why=WHY_D3,
            method="As D1's prefix-LM, with mixed forward/backward attention over the prefix (half of the "
            "heads left-to-right, half right-to-left, causal after) against the bidirectional prefix. Training speed: "
            "the mean validation continuation loss over the evaluations of the window both arms trained (the area "
            "under the curve per step), paired by seed; the final loss is reported beside.",
            tolerance=f"paired over seeds (t, 95%): holds if the mixed model's mean loss over the window is ≥ {D3_DELTA} "
                      "nats/byte lower (supported), refuted if the interval lies below that (contradicted), undecided "
                      "otherwise")
def d3(budget: Budget, runs: RunMemo) -> Evidence:
    # the bidirectional prefix-LM is D1's (the same runs)
    arms = _text_arms(runs, budget, {"prefix": ("d1-prefix", dict(task=PREFIX_TASK, mixer="softmax", mode="prefix")),
                                     "fwd_bwd": ("d3-fwd_bwd", dict(task=PREFIX_TASK, mixer="softmax", mode="fwd_bwd"))})
    # the window: the steps every run of both arms reached (runs may stop at different plateaus)
    window = min(r["valid_curve"]["step"][-1] for a in arms.values() for r in a.runs)
    auc = {m: arms[m].values(lambda r: mean_curve_loss(r, window)) for m in arms}
    ls = {m: arms[m].values(loss) for m in arms}
    mix, bi = stats(ls["fwd_bwd"]), stats(ls["prefix"])
    d = paired(f"mixed fwd/bwd learns faster (mean loss over steps ≤ {window})", auc["fwd_bwd"], auc["prefix"],
               delta=D3_DELTA, claimed="a < b")
    d_final = paired("mixed fwd/bwd ends lower", ls["fwd_bwd"], ls["prefix"], delta=D3_DELTA, claimed="a < b",
                     **robust(arms["fwd_bwd"], arms["prefix"], loss))
    return Evidence(verdict_of([d]), f"{d.text()}; reported: {d_final.text()}; final continuation loss: mixed "
                    f"forward/backward {fmt(mix)}, bidirectional prefix {fmt(bi)}; {training_note(arms)}",
                    {"fwd_bwd": mix, "bidirectional_prefix": bi, "window": window,
                     "mean_loss_over_window": {m: stats(v) for m, v in auc.items()},
                     "decisions": [d.to_json(), d_final.to_json()],
                     "training": {a: arm.record() for a, arm in arms.items()}},
                    seeds=list(budget.seeds),
                    figures=[seed_figure(f"Mean validation loss over steps ≤ {window}, seed by seed", "loss (nats/byte)",
                                         {"bidirectional prefix": stats(auc["prefix"]),
                                          "mixed fwd/bwd": stats(auc["fwd_bwd"])}, paired=True),
                             forest_figure([d, d_final]), curve_figure("Validation loss, every seed", arms)])


WHY_D4 = (
    'Bidirectional NoPE is permutation-equivariant, so it sits at chance on a position task whatever it '
    'learns: it cannot fail and is only a check. A positive control (bidirectional with learned '
    'positions) shows the task is learnable in this budget; causal NoPE is measured against it.'
)


@experiment("D4", why=WHY_D4,
            method="(a) Emit each token's position index (random tokens, 32 positions, so only position "
            "information helps). Positive control: a bidirectional model with learned absolute positions, which must "
            "learn the task for the setting to test anything. Evidence: a causal NoPE model, measured as the fraction "
            "of the control's gain over chance (log 32) that it recovers, seed by seed. Check, not evidence: "
            "bidirectional NoPE is permutation-equivariant, so it sits at chance whatever it learns. (b) Byte LM on "
            "Shakespeare, causal, RoPE vs NoPE. Softmax models, 2 layers, over the budget's seeds.",
            tolerance=f"the control must end ≥ {D4_CONTROL} nats below chance (else undecided: the setting cannot "
                      f"test the claim). Paired over seeds (t, 95%): (a) causal NoPE recovers more than {D4_LEARNS} of "
                      f"the control's gain, by ≥ {D4_MARGIN} (one-sample against the bound); (b) RoPE's LM loss ≥ "
                      f"{D4_LM_DELTA} nats/byte below NoPE's. holds if both are supported, caveat if (a) is and (b) is "
                      "not, refuted if (a) is contradicted, undecided otherwise")
def d4(budget: Budget, runs: RunMemo) -> Evidence:
    makers = {"causal NoPE": lambda s: recipes.position("decoder", s, budget),
              "bidirectional NoPE": lambda s: recipes.position("bidirectional", s, budget),
              "bidirectional, learned positions": lambda s: recipes.position("bidirectional", s, budget,
                                                                             positions=recipes.POSITION_TASK.seq_len)}
    pa = train_arms(runs, makers, budget)
    pos = {m: stats(pa[m].values(loss)) for m in pa}
    chance = math.log(recipes.POSITION_TASK.seq_len)

    def recovered(causal: list[float], control: list[float]) -> list[float]:
        return [(chance - c) / max(chance - k, 1e-9) for c, k in zip(causal, control)]

    ctl, cau = pa["bidirectional, learned positions"], pa["causal NoPE"]
    frac = stats(recovered(cau.values(loss), ctl.values(loss)))
    bound = [D4_LEARNS] * len(budget.seeds)
    # more training moves the fraction up (the causal arm improves) or down (the control improves): the
    # outcome must survive either and both
    ra, rc = cau.reach(loss), ctl.reach(loss)
    moved = None if ra is None or rc is None else [
        (recovered(x, k), bound) for x, k in ((ra, ctl.values(loss)), (cau.values(loss), rc), (ra, rc))]
    a = paired(f"(a) causal NoPE recovers more than {D4_LEARNS} of the control's gain", frac["values"], bound,
               delta=D4_MARGIN, claimed="a > b", capped=any_capped(cau, ctl), alternatives=moved)
    la = _text_arms(runs, budget, {"RoPE": ("d4-lm-rope", dict(mixer="softmax", mixer_options={"rope": True})),
                                   "NoPE": ("d4-lm-nope", dict(mixer="softmax", mixer_options={"rope": False}))})
    lm = {True: stats(la["RoPE"].values(loss)), False: stats(la["NoPE"].values(loss))}
    b = paired("(b) RoPE beats NoPE on text", lm[True]["values"], lm[False]["values"], delta=D4_LM_DELTA,
               claimed="a < b", **robust(la["RoPE"], la["NoPE"], loss))
    control_gain = chance - pos["bidirectional, learned positions"]["mean"]
    control_ok = control_gain >= D4_CONTROL
    v = verdict_with_caveat([a], [b]) if control_ok else "undecided"
    sym = abs(pos["bidirectional NoPE"]["mean"] - chance)
    reason = ((f"positive control learned the task ({control_gain:.2f} nats below chance, ≥ {D4_CONTROL}); " if
               control_ok else f"the positive control did not learn the task ({control_gain:.2f} nats below chance, "
                               f"< {D4_CONTROL}): this setting cannot test the claim; ")
              + f"{a.text()}; {b.text()}; position task loss: causal NoPE {fmt(pos['causal NoPE'])}, control "
              f"{fmt(pos['bidirectional, learned positions'])}, chance {chance:.3f}; check (symmetry, not evidence): "
              f"bidirectional NoPE {fmt(pos['bidirectional NoPE'])}, {sym:.3f} from chance; LM loss: RoPE "
              f"{fmt(lm[True])}, NoPE {fmt(lm[False])}; position: {training_note(pa)}; LM: {training_note(la)}")
    return Evidence(v, reason,
                    {"position_loss": pos, "recovered_fraction": frac, "control_gain": control_gain,
                     "symmetry_check_distance_from_chance": sym,
                     "lm_loss": {"rope": lm[True], "nope": lm[False]}, "decisions": [a.to_json(), b.to_json()],
                     "training": {"position": {m: x.record() for m, x in pa.items()},
                                  "lm": {m: x.record() for m, x in la.items()}}},
                    seeds=list(budget.seeds), figures=[
                        seed_figure("(a) Position task", "loss (nats)", pos, hline=("chance, log 32", chance)),
                        seed_figure("(b) Byte LM, causal", "loss (nats/byte)", {"RoPE": lm[True], "NoPE": lm[False]},
                                    paired=True), forest_figure([a, b]),
                        curve_figure("(a) Position task, validation loss", pa),
                        curve_figure("(b) Byte LM, validation loss", la)])
