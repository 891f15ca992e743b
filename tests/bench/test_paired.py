"""Interleaved timing and the interval of a paired ratio (``attnlab.bench.paired``)."""

import math
import random

import pytest

from attnlab.bench import train as bt
from attnlab.bench.paired import MET, MISSED, UNDECIDED, against_target, interleaved, median_interval, paired_ratio


def coverage(n: int, k: int) -> float:
    """P(x(k) ≤ median ≤ x(n+1-k)) for a continuous distribution, by counting: 1 − 2 P(Binomial(n, ½) ≤ k − 1)."""
    return 1 - 2 * sum(math.comb(n, j) for j in range(k)) / 2**n


@pytest.mark.parametrize("n", range(1, 31))
def test_the_interval_takes_the_narrowest_order_statistics_that_cover_95_percent(n):
    xs = [float(i) for i in range(1, n + 1)]
    random.Random(n).shuffle(xs)
    med, lo, hi = median_interval(xs)
    assert med == (n + 1) / 2
    ks = [k for k in range(1, n // 2 + 1) if coverage(n, k) >= 0.95]
    if not ks:  # fewer than 6 values: even [min, max] covers less than 95%
        assert (lo, hi) == (-math.inf, math.inf) and n < 6
    else:
        assert (lo, hi) == (ks[-1], n + 1 - ks[-1])
    if n == 10:
        assert (lo, hi) == (2.0, 9.0)  # coverage 1 − 22/1024 = 0.979; the next pair, (3, 8), covers 0.891


def test_the_interval_covers_the_median_as_often_as_it_says():
    rng = random.Random(0)
    trials, hits = 4000, 0
    for _ in range(trials):  # log-normal step times: skewed, as timings are; their median is exactly 1
        _, lo, hi = median_interval([math.exp(rng.gauss(0.0, 0.3)) for _ in range(10)])
        hits += lo <= 1.0 <= hi
    assert abs(hits / trials - coverage(10, 2)) < 0.015  # 0.979 ± about 3 standard errors


def test_a_drift_in_the_machine_falls_on_both_sides_of_a_paired_ratio():
    drift = [1.0 + 0.2 * r for r in range(10)]  # the machine slows down by 3× over the run
    num, den = [2.0 * x for x in drift], drift
    assert paired_ratio(num, den) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="same rounds"):
        paired_ratio(num, den[:-1])


def test_rounds_run_every_call_once_starting_one_further_along_each_time():
    order = []
    calls = {k: (lambda k=k: order.append(k)) for k in "abc"}
    times = interleaved(calls, reps=3, warmup=2)
    assert order[:6] == list("aabbcc")  # the warm-up: each call twice
    assert order[6:] == list("abc" "bca" "cab")
    assert set(times) == {"a", "b", "c"} and all(len(t) == 3 and min(t) >= 0 for t in times.values())
    with pytest.raises(ValueError, match="reps must be >= 1"):
        interleaved(calls, reps=0)


def test_a_target_is_met_missed_or_undecided_by_the_whole_interval():
    assert against_target((1.05, 1.00, 1.09), 1.1) == MET
    assert against_target((1.05, 1.00, 1.10), 1.1) == MET
    assert against_target((1.20, 1.12, 1.30), 1.1) == MISSED
    assert against_target((1.08, 1.02, 1.15), 1.1) == UNDECIDED
    assert against_target((1.0, -math.inf, math.inf), 1.1) == UNDECIDED
    assert against_target((1.0, None, None), 1.1) == UNDECIDED  # as JSON carries an unbounded interval


def test_the_tables_targets_are_judged_on_the_intervals():
    row = {"d_model": 64, "batch": 8, "params": 1, "median_s": 0.1, "spread": 0.1, "tokens_per_s": 1.0, "gflops": 1.0}
    result = {"matmul_gflops": 10.0, "setting": {"layers": 2, "vocab": 256, "dtype": "float32", "threads": 1,
                                                 "reps": 10, "labelled": 1.0},
              "rows": [{**row, "model": bt.PEER, "T": 512, "softmax_vs_peer": [1.14, 1.11, 1.18]},
                       {**row, "model": "softmax", "T": 512, "vs_softmax": [1.0, 1.0, 1.0]},
                       {**row, "model": "deltanet", "T": 512, "vs_softmax": [0.8, 0.75, 0.85]},
                       {**row, "model": "mesanet", "T": 512, "vs_softmax": [1.02, 0.97, 1.08]},
                       {**row, "model": "deltanet", "T": 128, "vs_softmax": [1.3, 1.2, 1.4]}]}
    goals = bt.targets(result)
    assert goals[0] == "softmax LM within 1.1× of the peer: d 64, T 512: 1.140× [1.110, 1.180] over target"
    assert goals[1] == ("at T = 512, no slower than the softmax LM: deltanet d 64: 0.800× [0.750, 0.850] within "
                        "target; mesanet d 64: 1.020× [0.970, 1.080] undecided")
    assert goals[2].startswith("1 within target, 1 over target, 1 undecided")
    md = bt.markdown(result)
    assert "| softmax 1.14× [1.11, 1.18] the peer |" in md and "Targets (95% intervals of the paired ratios)" in md
    result["setting"]["labelled"] = 0.0625  # the peer computes the head everywhere, attnlab at the labels only
    assert bt.targets(result) == [] and "Targets" not in bt.markdown(result)
