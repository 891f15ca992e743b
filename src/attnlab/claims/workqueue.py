"""The order in which the ledger's waiting runs take the shared workers, and what that order costs.

``reproduce --jobs N`` runs the trained claims side by side (:mod:`attnlab.claims.runner`): each claim is a
chain of batches (a pilot's rounds, then its seeds, then the arms it reports), and a batch is queued on the N
one-thread workers when the claim's previous batch ends. Whenever more runs wait than workers are free, the
order decides the ledger's length. First in, first out lets a short claim's batch hold back the claim whose
chain is longest, and that chain is what bounds the ledger once there are a few CPUs: the full ledger's S5 is
37 batches, 46 min alone on 8 CPUs of the ledger's 85.

So a waiting batch goes before the others by how many batches its claim still has to run, counted from the
folder's record of the last ``reproduce`` (``phases.jsonl``: every batch each claim handed to the memo), the
longest remaining chain first; runs of equal rank keep the order they were queued in. A ledger in a folder
without a record of every claim that trains ranks by how many batches a claim has already run instead (a claim
with a long chain so far is likely to have a long one left). On the full ledger's record
(``docs/results-full/cost.md``, :func:`side_by_side`) the first rule takes 8 CPUs from 85 min (first in, first
out) to 70, the second to 79; on 2 CPUs the three are within two minutes, and from 32 CPUs on S5's chain alone
bounds the ledger, whatever the order. The order changes when a run trains, never what it finds: a run's result
depends on its config alone.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future

ORDERS = ("left", "done", "fifo")  # most batches left first, most batches done first, first in first out


def rank(order: str, done: int, left: int | None) -> tuple[int, ...]:
    """The sort key of a claim's next batch (smaller goes first): ``done`` batches the claim has handed to the
    memo before it, ``left`` (with ``order="left"``) how many it still has to run, this one included."""
    if order == "left":
        if left is None:
            raise ValueError('order "left" needs the number of batches left')
        return (-left,)
    if order == "done":
        return (-done,)
    if order == "fifo":
        return ()
    raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")


def order_for(plan: dict[str, int], trained: list[str]) -> str:
    """``"left"`` where ``plan`` (:func:`attnlab.claims.batch_record.recorded_batches`) holds a chain for every claim in
    ``trained``, else ``"done"``: ranking by a partial record would put every claim it lacks last, however long
    its chain."""
    return "left" if all(cid in plan for cid in trained) else "done"


def side_by_side(chains: list[list[list[float]]], cpus: int, order: str = "left") -> float:
    """Wall time of claims run side by side on ``cpus`` shared workers: each claim a chain of batches of runs (in
    seconds), a batch queued when the claim's previous batch has finished, the waiting runs taken in ``order``
    (:func:`rank`; ``"left"`` counts the batches left from the chains themselves, as a record would)."""
    if cpus < 1:
        raise ValueError(f"cpus must be ≥ 1, got {cpus}")
    rank(order, 0, 0)  # an unknown order fails here, before anything is scheduled
    queue: list[tuple[tuple[int, ...], int, float, int]] = []  # (rank, order queued, seconds, claim)
    nxt, left, queued = [0] * len(chains), [0] * len(chains), itertools.count()

    def release(c: int) -> None:
        while nxt[c] < len(chains[c]) and not chains[c][nxt[c]]:
            nxt[c] += 1  # an empty batch (every run reused) waits for nothing
        if nxt[c] < len(chains[c]):
            key = rank(order, nxt[c], len(chains[c]) - nxt[c])
            for s in chains[c][nxt[c]]:
                heapq.heappush(queue, (key, next(queued), s, c))
            left[c] = len(chains[c][nxt[c]])
            nxt[c] += 1

    for c in range(len(chains)):
        release(c)
    running: list[tuple[float, int]] = []  # (end, claim)
    now = 0.0
    while queue or running:
        while queue and len(running) < cpus:
            _, _, s, c = heapq.heappop(queue)
            heapq.heappush(running, (now + s, c))
        now, c = heapq.heappop(running)
        left[c] -= 1
        if left[c] == 0:
            release(c)
    return now


class RankedPool:
    """An executor over ``pool`` that runs at most ``jobs`` calls at once and, of those waiting, starts the one of least
    ``rank()`` first (read in the submitting thread as it submits; ties in submission order).

    ``pool``: the executor that runs the calls (its own queue stays empty: a call goes to it only when one of
    the ``jobs`` slots is free); it is shut down with this one.
    """

    def __init__(self, pool, jobs: int, rank: Callable[[], tuple] = tuple):
        if not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
        self._pool, self._free, self._rank = pool, jobs, rank
        self._waiting: list[tuple[tuple, int, Future, Callable, tuple]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def submit(self, fn: Callable, *args) -> Future:
        outer: Future = Future()
        with self._lock:
            heapq.heappush(self._waiting, (self._rank(), next(self._order), outer, fn, args))
        self._start()
        return outer

    def _start(self) -> None:
        started = []
        with self._lock:
            while self._free and self._waiting:
                _, _, outer, fn, args = heapq.heappop(self._waiting)
                if not outer.set_running_or_notify_cancel():
                    continue  # cancelled while it waited
                self._free -= 1
                try:
                    started.append((outer, self._pool.submit(fn, *args)))
                except BaseException as e:  # a broken or shut-down pool: this call fails, the slot stays free
                    self._free += 1
                    outer.set_exception(e)
        for outer, inner in started:  # outside the lock: a call already done runs its callback right here
            inner.add_done_callback(lambda f, outer=outer: self._finished(outer, f))

    def _finished(self, outer: Future, inner: Future) -> None:
        with self._lock:
            self._free += 1
        if inner.cancelled():  # ``outer`` runs already, so it cannot be cancelled: it fails as the call did
            outer.set_exception(CancelledError())
        elif inner.exception() is not None:
            outer.set_exception(inner.exception())
        else:
            outer.set_result(inner.result())
        self._start()

    def shutdown(self) -> None:
        """Cancel the calls still waiting, wait for the running ones and stop the pool."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for _, _, outer, _, _ in waiting:
            outer.cancel()
        self._pool.shutdown()
