"""A mutation test of the untrained claims' rules: each rule's constant moved to the other side of what was
measured must change the verdict, and the reason must change with it (a rule whose verdict cannot move is a
check, not evidence). D2, I5, S2 and S3 have their own tests (test_untrained_rules, test_ttt_claims)."""

import pytest

from attnlab.claims import REGISTRY, Budget, concentration, information, robustness, ttt

QUICK = Budget.get("quick")
CASES = [
    ("R1", robustness, "R1_SLOPE", (0.0, 0.1)),
    ("R2", robustness, "R2_MIN_BIAS", 100.0),
    ("R3", robustness, "R3_SLOPE_ABOVE", 0.5),
    ("R4", robustness, "R4_SLACK", -1.0),
    ("I2", information, "I2_CLAIMED", {"gap": 0.5, "t_star": 0.5, "half_half": 0.5}),
    ("I3", information, "I3_CLAIMED_C", 0.5),
    ("I4", information, "I4_SPREAD", 0.0),
    ("S1", ttt, "EQ_TOL32", 0.0),
    ("C2", concentration, "QUAD_REL", 0.0),
    ("C6", concentration, "C6_SLOPE_TOL", 0.0),
]


@pytest.mark.parametrize(("cid", "module", "name", "value"), CASES, ids=[c[0] for c in CASES])
def test_moving_the_rule_changes_verdict_and_reason(monkeypatch, cid, module, name, value):
    before = REGISTRY[cid].run(QUICK)
    monkeypatch.setattr(module, name, value)
    after = REGISTRY[cid].run(QUICK)
    assert after.verdict != before.verdict, (before.verdict, before.reason)
    assert after.reason != before.reason, "the reason must say what decided the verdict"
