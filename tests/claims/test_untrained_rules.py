"""D2 and I5's rules, fed measurements on either side of their thresholds: each verdict the rule names is
reached, and the reason quotes the numbers that decided it (a mutation test of the rules)."""

import pytest

from attnlab.claims import REGISTRY, Budget, decoder, information

QUICK = Budget.get("quick")
FAKE_HEAD = {"layer": 0, "head": 0, "n": 128, "d": 64, "causal_min_diag": 0.1,
             "bi": {"float32": 120, "float64": 128, "effective": 30.0},
             "causal": {"float32": 118, "float64": 126, "effective": 28.0}}


@pytest.fixture
def no_smollm2(monkeypatch):  # the real model takes tens of seconds to load; the rule does not need it
    monkeypatch.setattr(decoder, "_smollm2", lambda: [FAKE_HEAD])


def test_d2_is_a_caveat_on_random_attention_and_quotes_the_berts_shape(no_smollm2):
    ev = REGISTRY["D2"].run(QUICK)
    assert ev.verdict == "caveat" and ev.measured["parts"] == {"A": "unresolved", "B": "supported"}
    bert = next(r for r in ev.measured["rows"] if (r["n"], r["d"], r["scale"]) == (512, 64, 1.0))
    assert f"bidirectional rank {bert['bi']['float32']}, causal {bert['causal']['float32']}" in ev.reason
    assert bert["bi"]["float32"] > 0.9 * 512, "random bidirectional attention is numerically full rank at n=512, d=64"


def test_d2_holds_when_every_far_case_counts_as_low_and_half_rank_as_restored(no_smollm2, monkeypatch):
    monkeypatch.setattr(decoder, "D2_LOW", 1.01)
    monkeypatch.setattr(decoder, "D2_FULL", 0.5)
    ev = REGISTRY["D2"].run(QUICK)
    assert ev.verdict == "holds", ev.reason


def test_d2_is_refuted_when_the_causal_mask_does_not_restore_rank(no_smollm2, monkeypatch):
    monkeypatch.setattr(decoder, "D2_FULL", 1.0)  # demand exact full numerical rank: the causal matrices miss it
    ev = REGISTRY["D2"].run(QUICK)
    assert ev.verdict == "refuted" and "contradicted" in ev.reason


def test_i5_verdicts_follow_the_agreement_threshold(monkeypatch):
    ev = REGISTRY["I5"].run(QUICK)
    assert ev.verdict == "refuted" and "(a) row entropy" in ev.reason
    monkeypatch.setattr(information, "I5_REL", 100.0)
    assert REGISTRY["I5"].run(QUICK).verdict == "holds"


def test_spectral_entropy_of_a_permutation_is_log_n():
    import math

    import torch

    P = torch.eye(5)[[1, 2, 3, 4, 0]]  # eigenvalues: the 5th roots of unity, all of modulus 1
    assert abs(float(information.spectral_entropy(P)) - math.log(5)) < 1e-12


def test_r2_says_the_noise_mean_biases_identity_only_when_the_gumbel_run_is_biased():
    from attnlab.claims import robustness

    said = robustness.identity_clause(0.0009, -0.3161, -0.3169, gumbel_biased=True)
    assert "(+0.0009" in said and "(-0.3161; limit -0.3169): the noise's mean is what biases it" in said
    said = robustness.identity_clause(0.0009, -0.0002, -0.3169, gumbel_biased=False)
    assert "mean is what biases" not in said and "under Gumbel noise as well (-0.0002)" in said
