"""S2 and S3's rules: their references are checked independently, and each verdict the rule names is reached."""

import torch

from attnlab.claims import REGISTRY, Budget, ttt
from attnlab.ops.delta import delta_rule, gated_delta_rule

QUICK = Budget.get("quick")


def test_coupled_l2_reference_without_the_term_is_deltanet():
    q, k, v, eta, _ = ttt._inputs(3, b=1, t=20, h=2, dtype=torch.float64)
    assert ttt._rel(ttt.coupled_l2(q, k, v, eta, 0.0), delta_rule(q, k, v, eta, mode="recurrent")) < 1e-13


def test_coupled_l2_reference_follows_its_gradient_by_hand():
    q, k, v, eta, _ = ttt._inputs(4, b=1, t=6, h=1, dk=3, dv=2, dtype=torch.float64)
    lam, W, out = 0.3, torch.zeros(3, 2, dtype=torch.float64), []
    for i in range(6):
        ki, vi, e = k[0, i, 0], v[0, i, 0], eta[0, i, 0]
        W = W - e * (torch.outer(ki, ki @ W - vi) + lam * W)
        out.append((q[0, i, 0] * 3**-0.5) @ W)
    assert torch.allclose(ttt.coupled_l2(q, k, v, eta, lam)[0, :, 0], torch.stack(out), atol=1e-14)


def test_s2_holds_and_names_the_naive_identification_a_different_rule():
    ev = REGISTRY["S2"].run(QUICK)
    assert ev.verdict == "holds"
    c = ev.measured["coupled"]
    assert c["naive_gap"] > 1e-3 and c["rewritten_gap"] < 1e-12
    assert f"{c['naive_gap']:.1e}" in ev.reason and "a different rule" in ev.reason


def test_s2_is_refuted_when_the_coupled_rule_is_not_a_rewriting(monkeypatch):
    def naive(q, k, v, eta, lam, scale=None):  # pretend the gradient gave the naive rule
        return gated_delta_rule(q, k, v, (1 - eta * lam).log(), eta, mode="recurrent")

    monkeypatch.setattr(ttt, "coupled_l2", naive)
    ev = REGISTRY["S2"].run(QUICK)
    assert ev.verdict == "refuted" and "is not Gated DeltaNet" in ev.reason
    assert "matches Gated DeltaNet with α = 1 − ηλ" in ev.reason


def test_s3_holds_and_turns_to_a_caveat_when_the_span_tolerance_is_out_of_reach(monkeypatch):
    ev = REGISTRY["S3"].run(QUICK)
    assert ev.verdict == "holds" and "on the span of its keys only" in ev.reason
    on = ev.measured["deltanet_span"]["on_span"]
    assert on == sorted(on, reverse=True) and f"{on[-1]:.1e}" in ev.reason
    monkeypatch.setattr(ttt, "S3_SPAN_TOL", 1e-12)
    ev = REGISTRY["S3"].run(QUICK)
    assert ev.verdict == "caveat" and "> 1e-12" in ev.reason and "does not reach the identity" in ev.reason


def test_s6_says_what_its_newton_schulz_spectrum_is_from_the_numbers():
    assert ttt.spectrum_clause(0.08, 1.20, 0.87) == "not orthogonal: 87% of them within 0.3 of 1"
    assert ttt.spectrum_clause(1 - 1e-6, 1 + 1e-6, 1.0).startswith("orthogonal: every singular value")
    ev = REGISTRY["S6"].run(QUICK)
    assert ev.verdict == "holds" and "(not orthogonal: " in ev.reason  # 5 quintic steps leave small values small
