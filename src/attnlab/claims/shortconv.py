"""S4, S5: the short convolution on K (post 11320), decided by training over seeds."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import torch

from ..tasks.markov import bayes_predictive, predictive_loss, unigram_predictive
from ..train import RunMemo, load_trained
from . import recipes
from .arms import Arm, any_capped, curve_figure, extrapolated, robust, train_arms, training_note
from .decide import forest_figure, paired, verdict_with_caveat
from .registry import Budget, Evidence, Figure, experiment
from .seeds import fmt, seed_figure, stats

PLACEMENTS = ["", "q", "k", "v", "qk", "qv", "kv", "qkv"]
DECISIVE = ["", "q", "k", "v"]  # the placements the rule reads, each with its own learning-rate pilot
OTHER_MIXERS = ("softmax", "linear_attn")  # reported beside DeltaNet, not read by the rule
# the reported arms (layer 2 only, the other mixers: 24 arms at the full budget) train the budget's first seeds
# only: no decision reads them, three seeds give their mean and spread, and the full ledger trains 48 runs fewer
REPORTED_SEEDS = 3
# minimum effects, fixed before the run (paired over seeds, Student-t 95% intervals; claims.decide)
S5_GAIN = 0.10  # MQAR accuracy: K conv over none
S5_OVER = 0.05  # MQAR accuracy: K conv over Q conv, and over V conv ("much less" than K)
S5_TEXT = 0.01  # nats/token: K conv's BPE text loss below none's
# a regime where no placement's mean accuracy reaches this separates none of them (it still enters the mean over
# regimes, where it adds 0 to every paired difference): the reason names it
S5_FLOOR = 0.05


WHY_S5 = (
    "In two layers any placement can give the second layer a token shift, so every placement can solve recall "
    "and the placements differ only in how fast they get there. In one attention-only layer the post's mechanism "
    "is isolated: a key sees its predecessor only through a convolution on K (or a mixed placement holding K), so "
    "none, Q and V cannot recall at all. Zoology's MQAR layout with more pairs at longer lengths makes the one "
    "layer's state hold more; the language-modelling half uses BPE tokens, on which local content is not spread "
    "over bytes."
)


def _over_regimes(per_regime: list[dict[str, Arm]], p: str, fn: Callable[[Arm], list[float] | None]):
    """Per seed, the mean over the MQAR regimes of ``fn(arm)`` for placement ``p`` (None if any is None)."""
    cols = [fn(arms[p]) for arms in per_regime]
    if any(c is None for c in cols):
        return None
    return [sum(v) / len(v) for v in zip(*cols)]


@experiment("S5", why=WHY_S5,
            method="Short-convolution placements {none, Q, K, V, QK, QV, KV, QKV} in one-layer attention-only DeltaNet "
            "(one head, d = 64 at every budget: the state is what is strained, not the width) on MQAR in Zoology's "
            "layout (vocabulary max(256, 2 × seq_len), (seq_len, pairs) = (64, 4) at the quick budget; (64, 4), (128, "
            "8), (256, 16), (512, 64) at the full one, batches of 32, 16, 8 and 2 sequences so that every step sees "
            "128 queries), summarised per "
            "placement as accuracy averaged over the regimes (the area under accuracy "
            "against pairs); and a BPE language model on Shakespeare (1024 tokens, 2 layers with MLPs, d = 64; step caps "
            "150 and 1350) with none and K (all four at the full budget), trained to a plateau. "
            "Reported beside the verdict, on the first regime: softmax and linear attention in one layer, with none "
            "and K at the quick budget and every placement at the full one, and (full budget) every placement in "
            "layer 2 only of 2-layer DeltaNet, over the budget's first three seeds. Learning rates: none, Q, "
            "K and V each from their own pilot; the mixed placements use K's.",
            tolerance=f"paired over seeds (t, 95%), one layer: K conv beats none by ≥ {S5_GAIN} accuracy and beats Q "
                      f"conv and V conv by ≥ {S5_OVER} each; on BPE text, K conv's loss is ≥ {S5_TEXT} nats/token "
                      "below none's (and below Q's and V's at the full budget, which trains them). holds if every "
                      "comparison is supported; caveat if the three MQAR ones are and a text one is not; refuted if "
                      "an MQAR one is contradicted; undecided otherwise")
def s5(budget: Budget, runs: RunMemo) -> Evidence:
    regimes = recipes.S5_REGIMES if budget.wide else recipes.S5_REGIMES[:1]
    accuracy = lambda r: r["valid"]["accuracy"]  # noqa: E731
    loss = lambda r: r["valid"]["loss"]  # noqa: E731

    # d = 64 at every budget: what S5 strains is the one layer's state against the number of pairs, so the full
    # budget adds regimes, seeds and training, not width (and quick and full test the same model on the first
    # regime); the BPE language model keeps the budget's width
    mq = dataclasses.replace(budget, model_scale=1)

    def one_layer(mixer, task, p):
        return lambda s: recipes.mqar(mixer, s, mq, short_conv=p, task=task, n_layers=1,
                                      batch_size=recipes.s5_batch(task))

    per_regime = []
    for seq_len, pairs in regimes:
        task = recipes.s5_task(seq_len, pairs)
        arms = train_arms(runs, {p: one_layer("deltanet", task, p) for p in DECISIVE}, budget)
        arms.update(train_arms(runs, {p: one_layer("deltanet", task, p) for p in ["k", "qk", "qv", "kv", "qkv"]},
                               budget, family=["k"]))
        per_regime.append(arms)
    mean_acc = {p: stats(_over_regimes(per_regime, p, lambda a: a.values(accuracy))) for p in PLACEMENTS}
    reach = {p: _over_regimes(per_regime, p, lambda a: a.reach(accuracy)) for p in PLACEMENTS}
    capped = {p: any(any_capped(arms[p]) for arms in per_regime) for p in PLACEMENTS}
    rivals = {"": ("none", S5_GAIN), "q": ("Q conv", S5_OVER), "v": ("V conv", S5_OVER)}
    mqar = [paired(f"MQAR, one layer: K conv beats {label}", mean_acc["k"]["values"], mean_acc[o]["values"],
                   delta=delta, claimed="a > b", capped=capped["k"] or capped[o],
                   reach=None if reach["k"] is None or reach[o] is None else (reach["k"], reach[o]))
            for o, (label, delta) in rivals.items()]
    text_places = ["", "q", "k", "v"] if budget.wide else ["", "k"]
    tx = train_arms(runs, {p: (lambda s, p=p: recipes.text(f"s5-bpe-deltanet-{p or 'none'}", s, budget,
                                                          task=recipes.BPE_TASK, mixer="deltanet", short_conv=p))
                           for p in text_places}, budget, family=["", "k"])
    lm = {p: stats(tx[p].values(loss)) for p in tx}
    # on text as on MQAR the claim is that K gives most of the gain: K against none, and (where the budget trains
    # them) against Q and V
    text = [paired(f"BPE text: K conv lowers loss vs {label}", lm["k"]["values"], lm[o]["values"], delta=S5_TEXT,
                   claimed="a < b", **robust(tx["k"], tx[o], loss))
            for o, label in (("", "none"), ("q", "Q conv"), ("v", "V conv")) if o in tx]
    decisions = [*mqar, *text]
    v = verdict_with_caveat(mqar, text)
    name = lambda p: p.upper() or "none"  # noqa: E731
    reported = {}
    # reported beside the verdict, on the first regime: layer 2 only of a 2-layer DeltaNet (full budget), and
    # softmax and linear attention in one layer (none and K at the quick budget, every placement at the full one)
    task = recipes.s5_task(*regimes[0])
    few = dataclasses.replace(budget, seeds=budget.seeds[:REPORTED_SEEDS])
    if budget.wide:
        two = train_arms(runs, {p: (lambda s, p=p: recipes.mqar("deltanet", s, mq, short_conv=["", p], task=task,
                                                                batch_size=recipes.s5_batch(task))) for p in PLACEMENTS},
                         few, family=["", "k"])
        reported["deltanet, layer 2 only"] = {name(p): stats(two[p].values(accuracy)) for p in PLACEMENTS}
    for m in OTHER_MIXERS:
        places = PLACEMENTS if budget.wide else ["", "k"]
        o = train_arms(runs, {p: one_layer(m, task, p) for p in places}, few, family=["", "k"])
        reported[f"{m}, one layer"] = {name(p): stats(o[p].values(accuracy)) for p in places}
    first = per_regime[0]
    reason = ("; ".join(d.text() for d in decisions) + ". MQAR accuracy, one layer, mean over "
              + ", ".join(f"({t}, {p})" for t, p in regimes) + ": "
              + ", ".join(f"{name(p)} {fmt(mean_acc[p], 2)}" for p in PLACEMENTS)
              + f"; {training_note({name(p): first[p] for p in PLACEMENTS})}. BPE text loss (nats/token): "
              + ", ".join(f"{name(p)} {fmt(lm[p])}" for p in lm) + f"; {training_note(tx)}")
    # per regime and placement: accuracy over the seeds (the floor clause, the figures, the measured record)
    acc = [{q: stats(arms[q].values(accuracy)) for q in PLACEMENTS} for arms in per_regime]
    floor = [f"({t}, {p}): best {best:.2f}" for (t, p), a in zip(regimes, acc)
             if (best := max(a[q]["mean"] for q in PLACEMENTS)) < S5_FLOOR]
    if floor:
        reason += f"; no placement reaches {S5_FLOOR} accuracy in " + ", ".join(floor)
    if reported:
        reason += f"; reported (regime {regimes[0]}, {len(few.seeds)} seeds): " + "; ".join(
            f"{k}: " + ", ".join(f"{p} {x['mean']:.2f}" for p, x in r.items()) for k, r in reported.items())
    names = [name(p) for p in PLACEMENTS]
    figs = [forest_figure(decisions),
            Figure("MQAR accuracy by placement, one-layer DeltaNet (mean ± sd over seeds)", "convolution on",
                   "accuracy", [{"label": f"seq {t}, {p} pairs", "x": [i + 0.1 * j for i in range(len(PLACEMENTS))],
                                 "y": [a[q]["mean"] for q in PLACEMENTS], "yerr": [a[q]["std"] for q in PLACEMENTS],
                                 "style": "o"} for j, ((t, p), a) in enumerate(zip(regimes, acc))], xticks=names),
            seed_figure("BPE LM on Shakespeare, DeltaNet", "validation loss (nats/token)", {name(p): lm[p] for p in lm}),
            curve_figure(f"MQAR {regimes[0]} validation loss, every seed", {name(p): first[p] for p in PLACEMENTS}),
            curve_figure("BPE text validation loss, every seed", tx)]
    if len(regimes) > 1:
        figs.insert(2, Figure("MQAR accuracy against pairs, one layer", "key-value pairs", "accuracy", [
            {"label": name(p), "x": [pr for _, pr in regimes],
             "y": [a[p]["mean"] for a in acc]} for p in PLACEMENTS]))
    return Evidence(v, reason, {"mqar_accuracy": {name(p): mean_acc[p] for p in PLACEMENTS},
                                "mqar_regimes": [list(r) for r in regimes],
                                "mqar_accuracy_per_regime": [{name(p): a[p] for p in PLACEMENTS} for a in acc],
                                "text_loss": {name(p): lm[p] for p in lm}, "reported": reported,
                                "decisions": [d.to_json() for d in decisions],
                                "training": {"mqar": [{name(p): a.record() for p, a in arms.items()}
                                                      for arms in per_regime],
                                             "text": {name(p): a.record() for p, a in tx.items()}}},
                    seeds=list(budget.seeds), figures=figs)


S4_CLOSED = 0.30  # fraction of the unigram → Bayes gap: the K conv must close at least this much more than none
S4_CANNOT = 0.25  # "cannot": the one-layer model without the conv closes less than this fraction of the gap …
S4_MARGIN = 0.05  # … by at least this margin (a one-sample comparison against the bound)


@functools.cache
def _valid(seed: int):
    """A seed's validation sequences of :data:`recipes.MARKOV_TASK`, their labels, chains and entropy rate (the
    same the seed's runs are measured on)."""
    data = recipes.MARKOV_TASK.build(seed)
    return data.valid_inputs, data.valid_labels, data.transitions, data.optimum


def _floors(budget: Budget) -> dict[int, dict[str, float]]:
    """Per seed, on that seed's validation sequences: the in-context unigram and Bayes losses and the entropy rate."""
    t = recipes.MARKOV_TASK
    out = {}
    for s in budget.seeds:
        x, y, _, rate = _valid(s)
        out[s] = {"unigram": predictive_loss(unigram_predictive(x, t.vocab_size), y),
                  "bayes": predictive_loss(bayes_predictive(x, t.vocab_size, t.branching, t.concentration), y),
                  "entropy_rate": rate}
    return out


def readout_tv(predict_last: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, P: torch.Tensor) -> float:
    """Replace the last input token of every sequence ``x`` by each token i in turn and compare the predicted
    next-token distribution there (``predict_last``: sequences → ``[n, V]`` probabilities) with the sequence's
    true row P_i (total variation), over the tokens i that left the context at least once; the mean."""
    tvs = []
    for i in range(P.shape[-1]):
        xi = x.clone()
        xi[:, -1] = i
        left = (x[:, :-1] == i).any(1)  # i was a source of a transition the predictor has read
        tvs.append((0.5 * (predict_last(xi) - P[:, i]).abs().sum(-1))[left])
    return float(torch.cat(tvs).mean())


@torch.no_grad()
def transition_probe(run: dict) -> float:
    """How well a trained model's state, read out with each token, recovers its sequence's chain
    (:func:`readout_tv` on the run's validation sequences)."""
    model, data, _ = load_trained(run["run_dir"])
    return readout_tv(lambda xi: model(xi)[:, -1].double().softmax(-1), data.valid_inputs, data.transitions)


def bayes_probe(budget: Budget) -> float:
    """The same read-out for the Bayes predictor (the best any in-context learner can do), on the first seed."""
    t = recipes.MARKOV_TASK
    x, _, P, _ = _valid(budget.seeds[0])
    return readout_tv(lambda xi: bayes_predictive(xi, P.shape[-1], t.branching, t.concentration)[:, -1], x, P)


WHY_S4 = (
    'The entropy rate of the chains is unreachable for a learner that sees each fresh chain for 64 '
    "tokens; the right floor is the exact Bayes predictor of the task's prior, and the natural ceiling an "
    "in-context unigram (what 'predicting yourself' can do). One attention-only layer isolates the post's "
    'mechanism: a second layer or an MLP could shift tokens without the convolution.'
)


@experiment("S4", why=WHY_S4,
            method="In-context Markov chains (a fresh sparse chain per sequence: vocab 16, 2 successors per "
            "token with Dirichlet(1) weights, 64 tokens), DeltaNet with K = V tied (one projection), with and "
            "without the K convolution, as one attention-only layer (where the post's 'cannot' applies: a token reaches "
            "its predecessor only through the convolution) and, at the full budget, as 2 layers with MLPs; d = 64 and "
            "two heads at every budget (the full one adds seeds, training and the 2-layer arms). The measure "
            "is the fraction of the gap closed between an in-context unigram predictor (Krichevsky–Trofimov) and the "
            "exact in-context Bayes predictor of the task's prior (tasks.markov.bayes_predictive), on each seed's "
            "validation sequences; the chains' entropy rate, which no in-context learner can reach, is reported "
            "beside. A read-out probe asks whether the trained state recovers each sequence's transitions.",
            tolerance=f"paired over seeds (t, 95%), one layer: (1) the K convolution closes ≥ {S4_CLOSED} more of the "
                      f"gap than none; (2) without it the model closes less than {S4_CANNOT} of the gap, by ≥ "
                      f"{S4_MARGIN} (one-sample against the bound). holds if both are supported; caveat if (1) is and "
                      "(2) is not; refuted if (1) is contradicted; undecided otherwise. The 2-layer comparison and the "
                      "probe are reported, not judged")
def s4(budget: Budget, runs: RunMemo) -> Evidence:
    floors = _floors(budget)
    layer_counts = (1, 2) if budget.wide else (1,)
    # the same width at every budget, as in S5: the claim is about a mechanism of one layer, and the full budget
    # then tests the quick budget's model with more seeds and training
    mb = dataclasses.replace(budget, model_scale=1)
    arms = {L: train_arms(runs, {"none": lambda s, L=L: recipes.markov(s, mb, layers=L),
                                 "k": lambda s, L=L: recipes.markov(s, mb, short_conv="k", layers=L)},
                          budget) for L in layer_counts}

    def closed(r: dict, s: int) -> float:
        f = floors[s]
        return (f["unigram"] - r["valid"]["loss"]) / (f["unigram"] - f["bayes"])

    res = {L: {a: stats([closed(r, s) for r, s in zip(arm.runs, budget.seeds)]) for a, arm in arms[L].items()}
           for L in layer_counts}
    def reached(arm):  # None when a capped run has no curve to extrapolate
        ext = [extrapolated(r) for r in arm.runs]
        return None if None in ext else [closed(r, s) for r, s in zip(ext, budget.seeds)]

    reach = {L: {a: reached(arm) for a, arm in arms[L].items()} for L in layer_counts}

    def both(ra, rb):
        return None if ra is None or rb is None else (ra, rb)

    n = len(budget.seeds)
    d1 = paired("1 layer: K conv closes more of the gap than none", res[1]["k"]["values"], res[1]["none"]["values"],
                delta=S4_CLOSED, claimed="a > b", capped=any_capped(*arms[1].values()),
                reach=both(reach[1]["k"], reach[1]["none"]))
    d2 = paired(f"1 layer, no conv: closes less than {S4_CANNOT} of the gap", res[1]["none"]["values"],
                [S4_CANNOT] * n, delta=S4_MARGIN, claimed="a < b", capped=any_capped(arms[1]["none"]),
                alternatives=None if reach[1]["none"] is None else [(reach[1]["none"], [S4_CANNOT] * n)])
    decisions = [d1, d2]
    extra = ""
    if 2 in arms:
        d3 = paired("2 layers + MLP: K conv closes more of the gap than none (reported)", res[2]["k"]["values"],
                    res[2]["none"]["values"], delta=S4_CLOSED, claimed="a > b", capped=any_capped(*arms[2].values()),
                    reach=both(reach[2]["k"], reach[2]["none"]))
        decisions.append(d3)
        extra = (f"; reported: {d3.text()} (2 layers: none {fmt(res[2]['none'], 2)}, K conv {fmt(res[2]['k'], 2)}; "
                 f"{training_note(arms[2])})")
    probe = {a: transition_probe(arms[1][a].runs[0]) for a in ("none", "k")}
    probe["bayes"] = bayes_probe(budget)
    f0 = floors[budget.seeds[0]]
    reason = (f"{d1.text()}; {d2.text()}; gap closed, 1 layer: none {fmt(res[1]['none'], 2)}, K conv "
              f"{fmt(res[1]['k'], 2)} (seed {budget.seeds[0]}: unigram {f0['unigram']:.3f}, Bayes {f0['bayes']:.3f}, "
              f"entropy rate {f0['entropy_rate']:.3f} nats/token); read-out probe, total variation to the true "
              f"transitions: none {probe['none']:.2f}, K conv {probe['k']:.2f}, Bayes {probe['bayes']:.2f}; "
              f"{training_note(arms[1])}{extra}")
    v = verdict_with_caveat([d1], [d2])
    figs = [seed_figure("Tied K = V, one layer: fraction of the unigram → Bayes gap closed", "gap closed",
                        {"no conv": res[1]["none"], "K conv": res[1]["k"]}, paired=True),
            forest_figure(decisions), curve_figure("Validation loss, one layer, every seed", arms[1])]
    if 2 in arms:
        figs.append(curve_figure("Validation loss, 2 layers + MLP, every seed", arms[2]))
    return Evidence(v, reason, {"gap_closed": {f"{L}_layer": r for L, r in res.items()}, "floors": floors,
                                "probe_tv": probe, "decisions": [d.to_json() for d in decisions],
                                "training": {f"{L}_layer": {a: arm.record() for a, arm in arms[L].items()}
                                             for L in layer_counts}},
                    seeds=list(budget.seeds), figures=figs)
