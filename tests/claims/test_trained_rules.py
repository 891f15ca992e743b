"""The trained claims' decision rules, fed synthetic runs: every verdict their rule names is reachable,
and the reason quotes the decision that made it (a mutation test of the rules, no training)."""

import pytest

from attnlab.claims import REGISTRY, Budget

QUICK = Budget.get("quick")


class FakeRuns:
    """Stands in for the RunMemo: a run's validation numbers are ``value(name, seed)``."""

    def __init__(self, value, stop_reason="plateau"):
        self.value, self.configs, self.stop_reason = value, [], stop_reason

    def trained_many(self, cfgs):
        return [self.trained(c) for c in cfgs]

    def trained(self, cfg):
        self.configs.append(cfg)
        v = self.value(cfg.name, cfg.seed)
        return {"valid": {"loss": v, "accuracy": v}, "optimum": 0.0, "run_dir": "unused", "steps": 100,
                "stop_reason": self.stop_reason,
                "valid_curve": {"step": [50, 100], "loss": [v + 0.1, v], "accuracy": [v, v]}}


def noise(seed):
    return (0.003, -0.002, 0.001, 0.0, -0.001)[seed]


def spread(seed):  # seed-to-seed differences large enough that 3 seeds cannot decide
    return (0.4, -0.3, 0.05, 0.2, -0.1)[seed]


def run(cid, value):
    return REGISTRY[cid].run(QUICK, FakeRuns(value))


@pytest.mark.parametrize(("gap", "wobble", "expected"), [(1.0, noise, "holds"), (0.0, noise, "refuted"),
                                                          (0.15, spread, "undecided")])
def test_s4(gap, wobble, expected):
    ev = run("S4", lambda name, s: 2.0 - (gap + wobble(s) if name.endswith("-k") else 0.0))
    assert ev.verdict == expected
    d = ev.measured["decisions"][0]
    assert f"{d['effect']:+.3f}" in ev.reason and d["outcome"] in ev.reason


@pytest.mark.parametrize(("fwd_bwd_gain", "wobble", "expected"), [(0.2, noise, "holds"), (-0.2, noise, "refuted"),
                                                                   (0.05, spread, "undecided")])
def test_d3(fwd_bwd_gain, wobble, expected):
    ev = run("D3", lambda name, s: 1.5 - (fwd_bwd_gain + wobble(s) if name.startswith("d3-fwd_bwd") else 0.0))
    assert ev.verdict == expected


@pytest.mark.parametrize(("decoder_excess", "wobble", "expected"), [(0.0, noise, "holds"), (0.3, noise, "refuted"),
                                                                     (0.0, spread, "undecided")])
def test_d1_is_non_inferiority(decoder_excess, wobble, expected):
    ev = run("D1", lambda name, s: 1.5 + (decoder_excess + wobble(s) if name.startswith("d1-decoder") else 0.0))
    assert ev.verdict == expected


@pytest.mark.parametrize(("pos_gap", "rope_gain", "expected"), [(2.0, 0.1, "holds"), (2.0, -0.1, "caveat"),
                                                                 (0.0, 0.1, "refuted")])
def test_d4(pos_gap, rope_gain, expected):
    def value(name, s):
        if name.startswith("d4-position-decoder"):
            return 3.4 - pos_gap + noise(s)
        if name.startswith("d4-position"):
            return 3.4
        return 1.5 - (rope_gain + noise(s) if "rope" in name else 0.0)

    assert run("D4", value).verdict == expected


@pytest.mark.parametrize(("k_acc", "text_gain", "expected"), [(0.95, 0.1, "holds"), (0.95, -0.1, "caveat"),
                                                               (0.3, 0.1, "refuted")])
def test_s5(k_acc, text_gain, expected):
    def value(name, s):
        if name.startswith("mqar-deltanet-"):
            place = name.split("-")[2]
            return (k_acc if "k" in place else 0.3) + noise(s)
        return 1.5 - (text_gain + noise(s) if name.startswith("text-deltanet-k") else 0.0)

    ev = run("S5", value)
    assert ev.verdict == expected
    assert len(ev.measured["decisions"]) == 4 and all(d["outcome"] in ev.reason for d in ev.measured["decisions"])


def test_a_comparison_of_arms_at_their_step_cap_is_undecided():
    clear = lambda name, s: 2.0 - (1.0 + noise(s) if name.endswith("-k") else 0.0)  # noqa: E731
    ev = REGISTRY["S4"].run(QUICK, FakeRuns(clear, stop_reason="step_cap"))
    assert ev.verdict == "undecided" and "step cap" in ev.reason
    assert ev.measured["training"]["k"]["capped"] == len(QUICK.seeds)
