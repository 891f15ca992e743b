"""The decision layer on synthetic paired arms: every outcome is reachable, and the interval is Student's t."""

import math
import random

import pytest
from scipy import stats as sps

from attnlab.claims.decide import (
    CONTRADICTED,
    SUPPORTED,
    UNRESOLVED,
    Decision,
    forest_figure,
    paired,
    t_interval,
    verdict_of,
    verdict_with_caveat,
)


def arms(effect, noise, n=5, seed=0):
    rng = random.Random(seed)
    base = [rng.gauss(1.0, 0.5) for _ in range(n)]  # seed-to-seed variation shared by both arms
    return [b + effect + rng.gauss(0, noise) for b in base], base


@pytest.mark.parametrize(("effect", "noise", "delta", "expected"), [
    (0.30, 0.02, 0.05, SUPPORTED),      # a clear effect above δ
    (0.00, 0.02, 0.05, CONTRADICTED),   # no effect: the interval sits below δ
    (0.02, 0.005, 0.05, CONTRADICTED),  # a real but too-small effect
    (-0.30, 0.02, 0.05, CONTRADICTED),  # the opposite direction
    (0.10, 0.30, 0.05, UNRESOLVED),     # noisy: the interval covers 0 and δ
])
def test_every_outcome_is_reachable(effect, noise, delta, expected):
    a, b = arms(effect, noise)
    d = paired("a beats b", a, b, delta=delta, claimed="a > b")
    assert d.outcome == expected, d
    assert d.n == 5 and d.method == "paired t, 95%"


def test_an_interval_above_zero_that_straddles_delta_is_unresolved():
    b = [1.0, 2.0, 3.0, 4.0, 5.0]
    d = paired("x", [y + e for y, e in zip(b, [0.01, 0.08, 0.03, 0.02, 0.07])], b, delta=0.05, claimed="a > b")
    assert d.ci[0] > 0 and d.effect < 0.05 < d.ci[1] and d.outcome == UNRESOLVED


def test_arms_at_their_step_cap_cannot_decide():
    a, b = arms(0.3, 0.02)
    d = paired("capped", a, b, delta=0.05, claimed="a > b", capped=True)
    assert d.outcome == UNRESOLVED and d.capped and "step cap" in d.text()
    z, w = arms(0.0, 0.02)
    assert paired("capped", z, w, delta=0.05, claimed="a > b", capped=True).outcome == UNRESOLVED


def test_the_claimed_direction_is_positive_either_way():
    a, b = arms(0.3, 0.02)
    up = paired("a > b", a, b, delta=0.05, claimed="a > b")
    down = paired("b < a", b, a, delta=0.05, claimed="a < b")
    assert up.effect == pytest.approx(down.effect) and up.ci == pytest.approx(down.ci)
    assert up.outcome == down.outcome == SUPPORTED


def test_t_interval_matches_scipy():
    diffs = [0.1, 0.25, -0.05, 0.3, 0.12]
    lo, hi = t_interval(diffs)
    ref = sps.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert lo == pytest.approx(ref.low) and hi == pytest.approx(ref.high)
    assert t_interval([0.3]) == (-math.inf, math.inf)  # one seed cannot decide
    assert paired("one seed", [1.0], [0.0], delta=0.1, claimed="a > b").outcome == UNRESOLVED


def test_bad_arms_are_refused_with_one_line():
    with pytest.raises(ValueError, match="the same seeds"):
        paired("x", [1.0, 2.0], [1.0], delta=0.1, claimed="a > b")
    with pytest.raises(ValueError, match="delta must be a positive"):
        paired("x", [1.0], [1.0], delta=0.0, claimed="a > b")
    with pytest.raises(ValueError, match="claimed must be"):
        paired("x", [1.0], [1.0], delta=0.1, claimed="a >= b")


def _d(outcome):
    return Decision("c", 0.0, (0.0, 0.0), 0.1, 3, "paired t, 95%", outcome)


def test_verdicts_follow_the_outcomes():
    assert verdict_of([_d(SUPPORTED), _d(SUPPORTED)]) == "holds"
    assert verdict_of([_d(SUPPORTED), _d(CONTRADICTED)]) == "refuted"
    assert verdict_of([_d(SUPPORTED), _d(UNRESOLVED)]) == "undecided"
    assert verdict_of([_d(UNRESOLVED)]) == "undecided"


def test_a_two_part_claim_has_a_caveat_when_only_its_first_part_holds():
    assert verdict_with_caveat([_d(SUPPORTED)], [_d(SUPPORTED)]) == "holds"
    assert verdict_with_caveat([_d(SUPPORTED)], [_d(UNRESOLVED)]) == "caveat"
    assert verdict_with_caveat([_d(SUPPORTED)], [_d(CONTRADICTED)]) == "caveat"
    assert verdict_with_caveat([_d(CONTRADICTED)], [_d(SUPPORTED)]) == "refuted"
    assert verdict_with_caveat([_d(UNRESOLVED)], [_d(SUPPORTED)]) == "undecided"


def test_decisions_serialise_quote_their_numbers_and_draw_a_forest(tmp_path):
    from dataclasses import asdict

    from attnlab.report.figures import figure_png

    a, b = arms(0.3, 0.02)
    d = paired("K conv lowers loss", a, b, delta=0.05, claimed="a > b")
    j = d.to_json()
    assert set(j) == {"comparison", "effect", "ci", "delta", "n", "method", "outcome", "capped"} and len(j["ci"]) == 2
    assert f"{d.effect:+.3f}" in d.text() and "δ 0.05" in d.text() and d.outcome in d.text()
    fig = forest_figure([d, paired("noisy", *arms(0.1, 0.3), delta=0.05, claimed="a > b")])
    assert fig.yticks == ["noisy", "K conv lowers loss"]
    assert figure_png(asdict(fig))[:4] == b"\x89PNG"


def test_rank_correlation_matches_scipy_and_decides_against_delta():
    from attnlab.claims.decide import rank_correlation

    x = [0.3, 0.35, 0.4, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    y = [0.95, 0.9, 0.85, 0.5, 0.4, 0.45, 0.3, 0.25, 0.26]
    d = rank_correlation("tracks", x, y, delta=0.3, claimed="negative")
    assert d.effect == pytest.approx(-sps.spearmanr(x, y).statistic) and d.n == 9
    assert d.ci[0] <= d.effect <= d.ci[1] and d.outcome == SUPPORTED
    flat = rank_correlation("no link", x, [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6], delta=0.3, claimed="negative")
    assert flat.outcome in (UNRESOLVED, CONTRADICTED) and flat.ci[0] < 0.3
    with pytest.raises(ValueError, match="at least 3 paired values"):
        rank_correlation("x", [1.0, 2.0], [1.0, 2.0], delta=0.3, claimed="negative")


def test_alternatives_decide_a_capped_comparison_only_when_every_one_agrees():
    a, b = arms(0.30, 0.02)
    flat = paired("x", a, b, delta=0.05, claimed="a > b", capped=True, alternatives=[(a, b)])
    assert flat.outcome == SUPPORTED and "robust" in flat.method
    caught_up = [x - 0.30 for x in a]  # more training of b would close the gap entirely
    d = paired("x", a, b, delta=0.05, claimed="a > b", capped=True, alternatives=[(a, b), (a, [x + 0.3 for x in b])])
    assert d.outcome == UNRESOLVED
    # reach is shorthand for the three mixes of final and reached values of the two arms
    rb = [x + 0.3 for x in b]
    assert paired("x", a, b, delta=0.05, claimed="a > b", capped=True, reach=(a, rb)) == paired(
        "x", a, b, delta=0.05, claimed="a > b", capped=True, alternatives=[(a, rb), (a, b), (a, rb)])
    bound = [0.25] * 5  # one arm against a fixed bound (S4's "closes less than 0.25")
    assert paired("x", caught_up, bound, delta=0.05, claimed="a < b", capped=True,
                  alternatives=[(caught_up, bound)]).outcome == paired("x", caught_up, bound, delta=0.05,
                                                                         claimed="a < b").outcome
    with pytest.raises(ValueError, match="not both"):
        paired("x", a, b, delta=0.05, claimed="a > b", capped=True, reach=(a, b), alternatives=[(a, b)])
    with pytest.raises(ValueError, match="one value per seed"):
        paired("x", a, b, delta=0.05, claimed="a > b", capped=True, alternatives=[(a[:3], b)])
