"""The trained claims' decision rules, fed synthetic runs: every verdict their rule names is reachable,
and the reason quotes the decision that made it (a mutation test of the rules, no training)."""

import pytest

from attnlab.claims import REGISTRY, Budget

QUICK = Budget.get("quick")


class FakeRuns:
    """Stands in for the RunMemo: a run's validation numbers are ``value(name, seed)``."""

    def __init__(self, value, stop_reason="plateau"):
        self.value, self.configs, self.stop_reason = value, [], stop_reason

    def trained_many(self, cfgs, heldout=False):
        return [self.trained(c) for c in cfgs]

    def heldout_loss(self, run):
        return run["valid"]["loss"]

    def trained(self, cfg):
        self.configs.append(cfg)
        v = self.value(cfg.name, cfg.seed)
        return {"valid": {"loss": v, "accuracy": v}, "optimum": 0.0, "run_dir": "unused", "steps": 100, "params": 1000,
                "stop_reason": self.stop_reason,
                "valid_curve": {"step": [50, 100], "loss": [v + 0.1, v], "accuracy": [v, v]}}


def noise(seed):
    return (0.003, -0.002, 0.001, 0.0, -0.001)[seed]


def spread(seed):  # seed-to-seed differences large enough that 3 seeds cannot decide
    return (0.4, -0.3, 0.05, 0.2, -0.1)[seed]


def run(cid, value):
    return run_with(FakeRuns(value), cid)


def run_with(runs, cid):
    return REGISTRY[cid].run(QUICK, runs)


@pytest.mark.parametrize(("k_closes", "none_closes", "wobble", "expected"), [
    (0.95, 0.05, noise, "holds"), (0.05, 0.05, noise, "refuted"), (0.95, 0.6, noise, "caveat"),
    (0.25, 0.05, spread, "undecided")])
def test_s4(monkeypatch, k_closes, none_closes, wobble, expected):
    from attnlab.claims import shortconv

    monkeypatch.setattr(shortconv, "transition_probe", lambda run: 0.5)
    floors = shortconv._floors(QUICK)

    def loss(name, s):  # the loss that closes the wanted fraction of this seed's unigram → Bayes gap
        f = floors[s]
        frac = k_closes + wobble(s) if "-k" in name else none_closes
        return f["unigram"] - frac * (f["unigram"] - f["bayes"])

    ev = run("S4", loss)
    assert ev.verdict == expected, ev.reason
    d = ev.measured["decisions"][0]
    assert f"{d['effect']:+.3f}" in ev.reason and d["outcome"] in ev.reason
    assert abs(ev.measured["gap_closed"]["1_layer"]["k"]["mean"] - k_closes) < 0.2


@pytest.mark.parametrize(("fwd_bwd_gain", "wobble", "expected"), [(0.2, noise, "holds"), (-0.2, noise, "refuted"),
                                                                   (0.05, spread, "undecided")])
def test_d3(fwd_bwd_gain, wobble, expected):
    ev = run("D3", lambda name, s: 1.5 - (fwd_bwd_gain + wobble(s) if name.startswith("d3-fwd_bwd") else 0.0))
    assert ev.verdict == expected


@pytest.mark.parametrize(("decoder_excess", "wobble", "expected"), [(0.0, noise, "holds"), (0.3, noise, "refuted"),
                                                                     (0.0, spread, "undecided")])
def test_d1_is_non_inferiority(decoder_excess, wobble, expected):
    ev = run("D1", lambda name, s: 1.5 + (decoder_excess + wobble(s) if name.startswith("d1-decoder") else 0.0))
    assert ev.verdict == expected and "(equal parameters: 1,000 in every run)" in ev.reason


@pytest.mark.parametrize(("causal_loss", "control_loss", "rope_gain", "expected"), [
    (1.5, 0.1, 0.1, "holds"), (1.5, 0.1, -0.1, "caveat"), (3.3, 0.1, 0.1, "refuted"),
    (1.5, 3.2, 0.1, "undecided")])  # the last: the positive control failed, the setting cannot test the claim
def test_d4(causal_loss, control_loss, rope_gain, expected):
    def value(name, s):
        if name.startswith("d4-position-decoder"):
            return causal_loss + noise(s)
        if name.startswith("d4-position-bidirectional-learned"):
            return control_loss + noise(s)
        if name.startswith("d4-position"):
            return 3.4657
        return 1.5 - (rope_gain + noise(s) if "rope" in name else 0.0)

    ev = run("D4", value)
    assert ev.verdict == expected, ev.reason
    assert ("positive control learned" in ev.reason) == (control_loss < 2.0)


@pytest.mark.parametrize(("k_acc", "text_gain", "expected"), [(0.95, 0.1, "holds"), (0.95, -0.1, "caveat"),
                                                               (0.3, 0.1, "refuted")])
def test_s5(k_acc, text_gain, expected):
    def value(name, s):
        if name.startswith("mqar-deltanet-"):
            place = name.split("-")[2]
            return (k_acc if "k" in place else 0.3) + noise(s)
        return 1.5 - (text_gain + noise(s) if name.startswith("s5-bpe-deltanet-k") else 0.0)

    ev = run("S5", value)
    assert ev.verdict == expected
    assert len(ev.measured["decisions"]) == 4 and all(d["outcome"] in ev.reason for d in ev.measured["decisions"])


def test_s5_at_the_full_budget_reports_every_placement_for_layer_two_and_the_other_mixers():
    from attnlab.claims.shortconv import PLACEMENTS

    def value(name, s):
        place = name.split("-")[2].split("+")[-1]
        return (0.95 if "k" in place else 0.3) + noise(s) if name.startswith("mqar-") else 1.5

    runs = FakeRuns(value)
    ev = REGISTRY["S5"].run(Budget.get("full"), runs)
    names = {c.name for c in runs.configs}
    for mixer in ("softmax", "linear_attn"):
        assert {f"mqar-{mixer}-{p or 'none'}" for p in PLACEMENTS} <= names
    assert {f"mqar-deltanet-none+{p or 'none'}" for p in PLACEMENTS} <= names
    reported = ev.measured["reported"]
    assert set(reported) == {"deltanet, layer 2 only", "softmax, one layer", "linear_attn, one layer"}
    assert all(set(r) == {p.upper() or "none" for p in PLACEMENTS} for r in reported.values())
    assert "softmax, one layer: none 0.30" in ev.reason and "QKV 0.95" in ev.reason
    # the reported arms train the first REPORTED_SEEDS seeds; the arms the rule reads, every seed of the budget
    seeds = lambda prefix: {c.seed for c in runs.configs if c.name.startswith(prefix)}  # noqa: E731
    assert seeds("mqar-softmax-") == seeds("mqar-deltanet-none+") == {0, 1, 2}
    assert seeds("mqar-deltanet-k") == seeds("s5-bpe-deltanet-v") == set(Budget.get("full").seeds)
    assert "(64, 4), 3 seeds): " in ev.reason


@pytest.mark.parametrize(("v_text_gain", "expected", "v_outcome"), [(0.0, "holds", "supported"),
                                                                      (0.3, "caveat", "contradicted")])
def test_s5_at_the_full_budget_decides_k_against_q_and_v_on_text_too(v_text_gain, expected, v_outcome):
    """The claim is that K gives most of the gain on language modelling as on recall: where the full budget trains
    the Q and V text arms, K must beat them too, and a V arm that beats K makes the claim a caveat."""
    def value(name, s):
        if name.startswith("mqar-"):
            return (0.95 if "k" in name.split("-")[2].split("+")[-1] else 0.3) + noise(s)
        if name.startswith("s5-bpe-deltanet-k"):
            return 1.4 + noise(s)
        return 1.5 - (v_text_gain if name.startswith("s5-bpe-deltanet-v") else 0.0) + noise(s)

    ev = REGISTRY["S5"].run(Budget.get("full"), FakeRuns(value))
    by = {d["comparison"]: d["outcome"] for d in ev.measured["decisions"]}
    assert ev.verdict == expected, ev.reason
    assert by["BPE text: K conv lowers loss vs none"] == by["BPE text: K conv lowers loss vs Q conv"] == "supported"
    assert by["BPE text: K conv lowers loss vs V conv"] == v_outcome and len(by) == 6


def test_s5_names_a_regime_where_no_placement_learns():
    from attnlab.claims.shortconv import S5_FLOOR

    class ByRegime(FakeRuns):
        def trained(self, cfg):
            r = super().trained(cfg)
            if cfg.name.startswith("mqar-") and cfg.task.seq_len == self.dead:
                r["valid"] = {**r["valid"], "accuracy": 0.01}
            return r

    def value(name, s):
        return (0.95 if "k" in name.split("-")[2] else 0.3) + noise(s) if name.startswith("mqar-") else 1.5

    verdicts = []
    for dead, named in ((512, True), (None, False)):
        runs = ByRegime(value)
        runs.dead = dead
        ev = REGISTRY["S5"].run(Budget.get("full"), runs)
        assert (f"no placement reaches {S5_FLOOR} accuracy in (512, 64): best 0.01" in ev.reason) == named, ev.reason
        verdicts.append(ev.verdict)
    assert verdicts[0] == verdicts[1] == "caveat"  # the dead regime adds 0 to every paired difference


def test_s5_at_the_quick_budget_reports_softmax_and_linear_attention_with_none_and_k():
    def value(name, s):
        place = name.split("-")[2]
        return (0.95 if "k" in place else 0.3) + noise(s) if name.startswith("mqar-") else 1.5

    runs = FakeRuns(value)
    ev = run_with(runs, "S5")
    names = {c.name for c in runs.configs}
    for mixer in ("softmax", "linear_attn"):
        assert {f"mqar-{mixer}-none", f"mqar-{mixer}-k"} <= names
        assert not any(n.startswith(f"mqar-{mixer}-q") for n in names)  # every placement only at the full budget
    assert not any("+" in n for n in names)  # layer 2 only: full budget
    reported = ev.measured["reported"]
    assert set(reported) == {"softmax, one layer", "linear_attn, one layer"}
    assert all(set(r) == {"none", "K"} for r in reported.values())
    assert "softmax, one layer: none 0.30, K 0.95" in ev.reason


class CurvelessRuns(FakeRuns):
    def trained(self, cfg):
        return {**super().trained(cfg), "valid_curve": {"step": [], "loss": [], "accuracy": []}}


def test_a_comparison_of_capped_arms_without_curves_to_extrapolate_is_undecided():
    clear = lambda name, s: 1.5 + (0.3 + noise(s) if name.startswith("d1-decoder") else 0.0)  # noqa: E731
    assert run("D1", clear).verdict == "refuted"
    ev = REGISTRY["D1"].run(QUICK, CurvelessRuns(clear, stop_reason="step_cap"))
    assert ev.verdict == "undecided" and "step cap" in ev.reason
    assert ev.measured["training"]["decoder"]["capped"] == len(QUICK.seeds)


class CurvedRuns(FakeRuns):
    """Runs at their step cap whose validation curve still falls (loss) or rises (accuracy) at ``slope`` per
    step over their last evaluations."""

    def __init__(self, value, slope):
        super().__init__(value, stop_reason="step_cap")
        self.slope = slope

    def trained(self, cfg):
        r = super().trained(cfg)
        v, steps = r["valid"]["loss"], [25 * i for i in range(1, 9)]
        sl = self.slope(cfg.name)
        r["steps"] = 200
        r["valid_curve"] = {"step": steps, "loss": [v - sl * (st - 200) for st in steps],
                            "accuracy": [v + sl * (st - 200) for st in steps]}
        return r


@pytest.mark.parametrize(("none_slope", "expected"), [(0.0, "supported"), (0.004, "unresolved")])
def test_capped_arms_decide_only_when_their_extrapolation_cannot_change_the_outcome(none_slope, expected):
    """S5's MQAR arms at the cap: K conv at 0.95, none at 0.3. If none is flat, doubling its training changes
    nothing and the comparison stands; if none still gains 0.004 accuracy per step, 200 more steps could
    bring it level, and the comparison cannot be decided."""
    def value(name, s):
        if name.startswith("mqar-deltanet-"):
            return (0.95 if "k" in name.split("-")[2] else 0.3) + noise(s)
        return 1.5

    def slope(name):
        return none_slope if name.startswith("mqar-deltanet-none") else 0.0

    ev = REGISTRY["S5"].run(QUICK, CurvedRuns(value, slope))
    d = ev.measured["decisions"][0]
    assert d["comparison"] == "MQAR, one layer: K conv beats none" and d["capped"]
    assert d["outcome"] == expected, ev.reason


@pytest.mark.parametrize(("large_acc", "expected"), [(0.2, "caveat"), (0.9, "refuted"), (0.8, "undecided")])
def test_i1_decides_training_on_the_trained_arms_and_gradients_at_init(large_acc, expected):
    """At init the q/k gradient grows with the score scale (measured on real models here), so the gradient
    comparison is contradicted: a training failure at large scale is then a caveat, not a hold."""
    def value(name, s):
        if name == "i1-x1":
            return 0.95 + noise(s)
        return large_acc + (spread(s) if large_acc == 0.8 else noise(s))

    ev = run("I1", value)
    assert ev.verdict == expected, ev.reason
    grad = ev.measured["decisions"][-1]
    assert grad["comparison"].startswith("q/k gradient") and grad["outcome"] == "contradicted"
    assert ev.measured["entropy_at_init"]["logits ×256"]["mean"] < 0.5


def test_the_readout_probe_is_zero_for_the_true_chain_and_positive_for_a_uniform_guess():
    import torch

    from attnlab.claims import shortconv

    x, _, P, _ = shortconv._valid(0)
    rows = torch.arange(x.shape[0])
    assert shortconv.readout_tv(lambda xi: P[rows, xi[:, -1]], x, P) == 0.0
    uniform = shortconv.readout_tv(lambda xi: torch.full((x.shape[0], 16), 1 / 16, dtype=torch.float64), x, P)
    assert 14 / 16 <= uniform < 1  # 2 successors per row: TV to uniform is 14/16, more when a weight is < 1/16


@pytest.mark.parametrize(("control_slope", "expected"), [(0.0, "supported"), (0.01, "unresolved")])
def test_d4_stands_only_if_training_the_control_on_could_not_overturn_it(control_slope, expected):
    """D4's measure is a ratio of two arms: the causal arm's gain over the control's. At the cap, causal NoPE
    recovers 0.34 of a flat control's gain (> 0.25 + δ); a control still falling 0.01 nats per step would
    reach 0 nats in 200 more steps, and the causal arm would then recover 0.19: the comparison cannot stand."""
    def value(name, s):
        if name.startswith("d4-position-decoder"):
            return 2.8 + noise(s)
        if name.startswith("d4-position-bidirectional-learned"):
            return 1.5 + noise(s)
        return 3.4657 if name.startswith("d4-position") else 1.5

    def slope(name):
        return control_slope if name.startswith("d4-position-bidirectional-learned") else 0.0

    ev = REGISTRY["D4"].run(QUICK, CurvedRuns(value, slope))
    d = ev.measured["decisions"][0]
    assert d["comparison"].startswith("(a) causal NoPE recovers") and d["capped"]
    assert d["outcome"] == expected, ev.reason


def test_d1_says_equal_parameters_only_when_every_run_has_the_same_count():
    from attnlab.claims.arms import Arm
    from attnlab.claims.decoding import parameters_clause

    def arm(*counts):
        return Arm("a", 0.003, {}, runs=[{"params": n} for n in counts])

    assert parameters_clause({"decoder": arm(148100, 148100), "prefix-LM": arm(148100, 148100)}) == \
        "equal parameters: 148,100 in every run"
    assert parameters_clause({"decoder": arm(148100, 148100), "prefix-LM": arm(148164, 148164)}) == \
        "parameters differ: decoder 148,100, prefix-LM 148,164"
