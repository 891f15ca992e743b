"""The order in which waiting runs take the shared workers: the rank, the record it reads, the schedule it gives
and the pool that keeps it."""

import json
import threading
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.claims.batch_record import recorded_batches
from attnlab.claims.cost import schedule
from attnlab.claims.workqueue import ORDERS, RankedPool, order_for, rank, side_by_side


def test_rank_puts_the_longest_chain_left_or_done_first_and_fifo_keeps_queue_order():
    assert rank("left", 5, 3) < rank("left", 0, 2)  # three batches left goes before two, whatever was done
    assert rank("done", 5, None) < rank("done", 1, 9)
    assert rank("fifo", 0, 9) == rank("fifo", 7, 1) == ()
    with pytest.raises(ValueError, match=r"order must be one of left, done, fifo, got 'lifo'"):
        rank("lifo", 0, 1)
    with pytest.raises(ValueError, match="needs the number of batches left"):
        rank("left", 0, None)


def test_order_is_left_only_when_the_record_covers_every_claim_that_trains():
    assert order_for({"S5": 37, "R1": 2}, ["S5", "R1"]) == "left"
    assert order_for({"S5": 37}, ["S5", "R1"]) == "done"
    assert order_for({}, []) == "left"  # nothing trains: nothing to rank


def test_recorded_batches_counts_each_claims_latest_session(tmp_path):
    phases = tmp_path / "phases.jsonl"
    assert recorded_batches(phases) == {}  # no record yet
    rows = [{"session": "1", "claim": "S5"}, {"session": "1", "claim": "S5"}, {"session": "1", "claim": "R1"},
            {"session": "2", "claim": "R1"}]  # R1 rerun alone in session 2: its one batch supersedes
    phases.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"session": "2", "cla')  # cut by a kill
    with pytest.warns(RuntimeWarning, match="torn"):
        assert recorded_batches(phases) == {"S5": 2, "R1": 1}
    phases.write_text("not json\n" + "".join(json.dumps(r) + "\n" for r in rows))
    assert recorded_batches(phases) == {}  # a damaged record orders nothing and stops nothing: batches done rank


def test_left_first_beats_first_in_first_out_by_hand():
    a, b = [[2.0], [2.0], [2.0]], [[1.0] * 6]  # a: a chain of three batches; b: one batch of six
    # 2 CPUs. fifo: a's second batch queues behind b's last four runs and starts at 4, its third at 6: 8 s.
    # left: a's second (two left) goes before b's runs (one left), a's third ties with b's last two, which were
    # queued first: 7 s. done: a, with a batch done, goes before b, with none: 6 s, the work over two CPUs
    assert side_by_side([a, b], 2, "fifo") == 8.0
    assert side_by_side([a, b], 2, "left") == 7.0
    assert side_by_side([a, b], 2, "done") == 6.0
    with pytest.raises(ValueError, match="order must be one of"):
        side_by_side([a], 2, "random")
    with pytest.raises(ValueError, match="cpus must be ≥ 1, got 0"):
        side_by_side([a], 0)


def test_claims_side_by_side_share_the_workers_by_hand():
    a, b = [[10.0], [10.0]], [[5.0, 5.0, 5.0, 5.0]]  # a: two batches in a chain; b: one batch of four
    # 2 CPUs: a's first run and b's first from 0, b's second at 5, then at 10 b's last two and a's second.
    # fifo and left (a and b each one batch left) start b's two, queued first, and a's second at 15: 25 s;
    # done puts a (a batch done) first: 20 s
    for order, wall in [("fifo", 25.0), ("left", 25.0), ("done", 20.0)]:
        assert side_by_side([a, b], 2, order) == wall
        assert side_by_side([a, b], 1, order) == 40.0 and side_by_side([a, b], 8, order) == 20.0
    assert side_by_side([[[], [3.0]], []], 2) == 3.0 and side_by_side([], 3) == 0.0
    assert side_by_side([a], 4) == schedule([10.0], 4) * 2  # one claim: its batches one after another


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.lists(st.floats(0.1, 10.0), max_size=4), max_size=3), max_size=4), st.integers(1, 4),
       st.sampled_from(ORDERS))
def test_side_by_side_is_never_slower_than_the_claims_one_by_one_nor_faster_than_the_work(chains, cpus, order):
    together = side_by_side(chains, cpus, order)
    alone = sum(schedule(b, cpus) for c in chains for b in c)
    work = sum(s for c in chains for b in c for s in b)
    longest_chain = max((sum(max(b, default=0.0) for b in c) for c in chains), default=0.0)
    assert max(work / cpus, longest_chain) - 1e-9 <= together <= work + 1e-9
    # any order is a greedy list schedule: within 2 - 1/cpus of the best, and one-by-one is a schedule
    assert together <= alone * (2 - 1 / cpus) + 1e-9


class _Gate:
    """A one-worker pool whose first call waits at a gate, so that the calls behind it queue in RankedPool."""

    def __init__(self):
        self.pool, self.gate, self.ran = ThreadPoolExecutor(1), threading.Event(), []

    def blocker(self):
        assert self.gate.wait(10), "the gate was never opened"

    def record(self, x):
        self.ran.append(x)
        return x

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def shutdown(self):
        self.gate.set()  # RankedPool cancels what waits before it stops the pool: the blocker may end now
        self.pool.shutdown()


def test_ranked_pool_starts_the_least_rank_first_and_ties_in_submission_order():
    g, current = _Gate(), [()]
    pool = RankedPool(g, 1, lambda: current[0])
    futures = [pool.submit(g.blocker)]
    for x, r in [("c", (3,)), ("a1", (1,)), ("b", (2,)), ("a2", (1,)), ("first", (-5,))]:
        current[0] = r
        futures.append(pool.submit(g.record, x))
    g.gate.set()
    assert [f.result(timeout=10) for f in futures[1:]] == ["c", "a1", "b", "a2", "first"]
    assert g.ran == ["first", "a1", "a2", "b", "c"]
    pool.shutdown()


def test_ranked_pool_passes_failures_on_skips_cancelled_calls_and_cancels_what_waits_at_shutdown():
    g = _Gate()
    pool = RankedPool(g, 1)
    blocked = pool.submit(g.blocker)
    dropped, failing, kept = pool.submit(g.record, "dropped"), pool.submit(int, "x"), pool.submit(g.record, "kept")
    assert dropped.cancel()  # still waiting: cancelled here, never sent to the pool
    g.gate.set()
    assert kept.result(timeout=10) == "kept" and g.ran == ["kept"] and blocked.result() is None
    with pytest.raises(ValueError, match="invalid literal"):
        failing.result()
    g.gate.clear()
    blocked = pool.submit(g.blocker)
    waiting = pool.submit(g.record, "never")
    pool.shutdown()
    assert waiting.cancelled() and blocked.result(timeout=10) is None and g.ran == ["kept"]
    late = pool.submit(g.record, "late")  # the pool is shut: the call fails with the pool's own error
    with pytest.raises(RuntimeError, match="shutdown"):
        late.result(timeout=10)


def test_ranked_pool_keeps_at_most_jobs_calls_on_the_pool():
    inner = ThreadPoolExecutor(4)
    pool = RankedPool(inner, 2)
    running, most, lock = [0], [0], threading.Lock()

    def work():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        threading.Event().wait(0.02)
        with lock:
            running[0] -= 1

    for f in [pool.submit(work) for _ in range(8)]:
        f.result(timeout=10)
    pool.shutdown()
    assert most[0] == 2
    with pytest.raises(ValueError, match="jobs must be a positive integer, got 0"):
        RankedPool(inner, 0)


def test_a_cancelled_call_on_the_pool_fails_its_future():
    class Cancelling:  # a pool that cancels every call it is given (as a pool being torn down may)
        def submit(self, fn, *args):
            cancelled = Future()
            cancelled.cancel()
            return cancelled

        def shutdown(self):
            pass

    f = RankedPool(Cancelling(), 1).submit(print, "never")
    with pytest.raises(CancelledError):
        f.result(timeout=10)
