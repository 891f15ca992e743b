"""C7: trained softmax attention concentrates where trained linear attention cannot (post 9889)."""

from __future__ import annotations

from ..diagnostics.trained import query_sparsity
from ..train import RunMemo, load_trained
from . import recipes
from .arms import any_capped, curve_figure, robust, train_arms, training_note
from .decide import forest_figure, paired, rank_correlation, verdict_with_caveat
from .registry import Budget, Evidence, Figure, experiment
from .seeds import fmt, stats

MIXERS = ("softmax", "deltanet", "linear_attn")
STEPS = recipes.RECALL_STEPS
C7_S_DELTA = 0.1  # ℓ1/ℓ2 sparsity: linear attention's rows at least this much less concentrated than softmax's
C7_ACC_DELTA = 0.1  # accuracy: softmax at least this much above linear attention
C7_RHO_DELTA = 0.3  # Spearman ρ between S and accuracy over every trained run: at most −0.3 ("tracks")


WHY_C7 = (
    'The claim couples two observations (linear attention cannot concentrate; this tracks recall); the '
    'second is a rank correlation over every trained run, with a bootstrap interval over runs.'
)


@experiment("C7", why=WHY_C7,
            method="Softmax attention, DeltaNet and linear attention (identity features), each 2 layers, "
            "trained to a plateau (learning rate from a grid per mixer) on MQAR over the budget's seeds (no short "
            "convolution, so recall must come "
            "from the mixer); "
            "the ℓ1/ℓ2 sparsity S of the last layer's attention rows at the query positions (implicit matrices "
            "for the linear mixers, absolute values), and validation accuracy.",
            tolerance=f"paired over seeds (t, 95%): linear attention's S exceeds softmax's by ≥ {C7_S_DELTA} and "
                      f"softmax's accuracy exceeds linear attention's by ≥ {C7_ACC_DELTA}; over every trained run of "
                      f"the three mixers, Spearman's ρ of S and accuracy (bootstrap 95%) is ≤ −{C7_RHO_DELTA}. holds "
                      "if all three are supported, caveat if the S comparison is and another is not, refuted if the "
                      "S comparison is contradicted, undecided otherwise")
def c7(budget: Budget, runs: RunMemo) -> Evidence:
    arms = train_arms(runs, {m: (lambda s, m=m: recipes.mqar(m, s, budget, steps=STEPS)) for m in MIXERS}, budget)
    S, acc = {}, {}
    for m in MIXERS:
        acc[m] = stats(arms[m].values(lambda r: r["valid"]["accuracy"]))
        S[m] = stats([query_sparsity(*load_trained(r["run_dir"])[:2]) for r in arms[m].runs])
    ds = paired("linear attention less concentrated (S)", S["linear_attn"]["values"], S["softmax"]["values"],
                # S is read from the final model only (no curve of it is kept): a capped arm cannot be extrapolated
                delta=C7_S_DELTA, claimed="a > b", capped=any_capped(arms["linear_attn"], arms["softmax"]))
    da = paired("softmax recalls better (accuracy)", acc["softmax"]["values"], acc["linear_attn"]["values"],
                delta=C7_ACC_DELTA, claimed="a > b",
                **robust(arms["softmax"], arms["linear_attn"], lambda r: r["valid"]["accuracy"]))
    dr = rank_correlation("sparser attention, better recall (−ρ of S and accuracy over runs)",
                          [x for m in MIXERS for x in S[m]["values"]], [x for m in MIXERS for x in acc[m]["values"]],
                          delta=C7_RHO_DELTA, claimed="negative")
    v = verdict_with_caveat([ds], [da, dr])
    reason = f"{ds.text()}; {da.text(2)}; {dr.text(2)}; " + "; ".join(
        f"{m}: S {fmt(S[m])}, accuracy {fmt(acc[m], 2)}" for m in MIXERS)
    reason += f"; {training_note(arms)}"
    from .pretrained import real_stats

    real = {m: real_stats(m)["summary"]["sparsity"] for m in ("smollm2", "minilm")}
    reason += f"; real weights on Shakespeare (reported, not judged): S = {real['smollm2']:.3f} (SmolLM2), " \
              f"{real['minilm']:.3f} (MiniLM)"
    fig = Figure("Concentration vs recall on MQAR", "mean S at query rows (lower = sparser)", "accuracy", [
        {"label": m, "x": S[m]["values"], "y": acc[m]["values"], "style": "o"} for m in MIXERS])
    return Evidence(v, reason, {"sparsity": S, "accuracy": acc, "real_weights_sparsity": real,
                                "decisions": [ds.to_json(), da.to_json(), dr.to_json()],
                                "training": {a: arm.record() for a, arm in arms.items()}},
                    seeds=list(budget.seeds), figures=[fig, forest_figure([ds, da, dr]),
                                                       curve_figure("Validation loss, every seed", arms)])
