"""Run claims with a cache: a finished claim reruns only when its code or budget changed (or ``force``).

The cache key of a claim hashes every attnlab module its experiment imports, transitively, and the
budget (:mod:`attnlab.claims.keys`), so editing a module invalidates exactly the claims that reach it.
Results are written atomically.

With ``jobs`` > 1 the claims that train run side by side, each in a thread of this process that hands its
batches of runs to the memo's shared worker processes: a claim waiting for the last run of a batch (a pilot's
round, say) no longer leaves a worker idle while another claim has runs to train. Every run's result depends on
its config alone and every claim's verdict on its runs alone, so the ledger is the same as a serial one; the
claims are reported as they finish and written in ledger order. Where more runs wait than workers are free, the
batch of the claim with the longest chain still to run goes first (:mod:`attnlab.claims.workqueue`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..train.memo import RunMemo, worker_pool
from ..train.memo import code_hash as trainer_hash
from ..train.ownership import locked
from .batch_record import PHASES, recorded_batches
from .keys import claim_key
from .provenance import environment, now_utc
from .registry import REGISTRY, Budget, Claim, Evidence
from .workqueue import RankedPool, order_for, rank

PENDING = "pending"
ERROR = "error"


@dataclasses.dataclass
class ClaimResult:
    id: str
    statement: str
    source: str
    verdict: str
    reason: str
    measured: dict[str, Any]
    tolerance: str
    seeds: list[int]
    seconds: float
    method: str = ""
    why: str = ""
    figures: list[dict] = dataclasses.field(default_factory=list)
    key: str = ""
    finished: str = ""  # UTC, ISO 8601
    environment: dict[str, Any] = dataclasses.field(default_factory=dict)
    cached: bool = False

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("cached")
        return d


def parse_only(only: str | Iterable[str] | None) -> list[str]:
    """``"S5,D1"`` or a prefix such as ``"C"`` → claim IDs in ledger order; unknown IDs are an error."""
    if not only:
        return list(REGISTRY)
    items = [s.strip().upper() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()]
    out = []
    for it in items:
        hits = [cid for cid in REGISTRY if cid == it or (it.isalpha() and cid.startswith(it))]
        if not hits:
            raise ValueError(f"--only: unknown claim {it!r}; valid IDs are {', '.join(REGISTRY)} (or a letter prefix)")
        out += [h for h in hits if h not in out]
    return [cid for cid in REGISTRY if cid in out]


def _clean(x: Any) -> Any:
    """JSON-safe: tensors/arrays to lists, non-finite floats to strings (valid JSON, no silent NaN)."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    return str(x)


def run_one(claim: Claim, budget: Budget, runs: RunMemo) -> ClaimResult:
    r = _evaluate(claim, budget, runs)
    r.finished, r.environment = now_utc(), environment()
    return r


def _evaluate(claim: Claim, budget: Budget, runs: RunMemo) -> ClaimResult:
    base = dict(id=claim.id, statement=claim.statement, source=claim.source, tolerance=claim.tolerance,
                method=claim.method, why=claim.why, key=claim_key(claim, budget))
    if claim.run is None:
        return ClaimResult(**base, verdict=PENDING, reason="no experiment implemented yet for this claim",
                           measured={}, seeds=[], seconds=0.0)
    t0 = time.perf_counter()
    try:
        ev: Evidence = claim.run(budget, runs) if claim.trains else claim.run(budget)
    except Exception as e:  # a crashing experiment is reported, not hidden, and does not stop the ledger
        tb = traceback.format_exc(limit=3)
        return ClaimResult(**base, verdict=ERROR, reason=f"{type(e).__name__}: {e}", measured={"traceback": tb},
                           seeds=[], seconds=time.perf_counter() - t0)
    return ClaimResult(**base, verdict=ev.verdict, reason=ev.reason, measured=_clean(ev.measured),
                       seeds=list(ev.seeds or budget.seeds), seconds=time.perf_counter() - t0,
                       figures=[_clean(dataclasses.asdict(f)) for f in ev.figures])


def recorded_status(held: dict | None, key: str) -> str | None:
    """How a results folder holds a claim against its current key: "current" (a reproduce reuses it), "stale"
    (recorded by other code or another budget's settings: a reproduce recomputes it), "error" (recomputed too),
    or None (not recorded)."""
    if held is None:
        return None
    if held.get("verdict") == ERROR:
        return ERROR
    return "current" if held.get("key") == key else "stale"


def held_results(out: Path, budget: str) -> dict[str, dict]:
    """The claims ``out`` holds for ``budget``: none where it holds none, another budget's, or a file that does not
    read. Read only: unlike :func:`load_cache`, it moves nothing aside (``reproduce --list`` looks, it does not run)."""
    try:
        data = json.loads((Path(out) / "claims.json").read_text(encoding="utf-8"))
        return {c["id"]: c for c in data["claims"]} if data.get("budget") == budget else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def load_cache(out: Path, budget: str | None = None) -> dict[str, dict]:
    """The finished claims of ``out/claims.json``. A damaged file is never dropped silently: it is moved aside
    to ``claims.json.corrupt-<time>`` with a warning, and its claims are recomputed. A folder holds one
    budget: asking for another is refused (ValueError) rather than mixing them in one file."""
    p = out / "claims.json"
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text())
        claims = {c["id"]: c for c in data["claims"]}
        held = data["budget"]
    except (ValueError, KeyError, TypeError) as e:
        aside = p.with_name(f"claims.json.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(p, aside)
        warnings.warn(f"{p} is damaged ({type(e).__name__}: {e}); kept aside as {aside.name}, its claims will be "
                      "recomputed", RuntimeWarning, stacklevel=2)
        return {}
    if budget is not None and held != budget:
        raise ValueError(f"{out} holds the {held!r} budget's results; give --out another folder for the {budget!r} "
                         "budget (one budget per results folder)")
    return claims


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False))
    os.replace(tmp, path)


class ReportingMemo(RunMemo):
    """A :class:`RunMemo` that says, before each batch of runs, how many will train and how many it reuses,
    ticks as each run finishes, and says after the batch how long it took: a claim at the full budget trains
    for tens of minutes, and a progress bar that only counts claims would sit still all that time."""

    def __init__(self, root: str | Path, jobs: int = 1, report: Callable[[str], None] | None = None,
                 ray_address: str | None = None, tick: Callable[[int, int], None] | None = None,
                 phases: Path | None = None, matmul_gflops: float | None = None):
        super().__init__(root, jobs, ray_address)
        # one core's float32 matmul rate as this session began, kept with its batches: runs' seconds move with
        # the machine's speed from day to day, and a rate measured on another day would misstate their share of it
        self.matmul_gflops = matmul_gflops
        self.report = report or (lambda msg: None)
        self.tick = tick or (lambda done, total: None)
        # each batch of runs is a phase: its runs are independent, the next batch waits for it. Recorded (one
        # JSON line per batch, ``claims.cost``) so that what the ledger would take on c CPUs can be computed
        self.phases, self.session = phases, f"{time.time():.0f}-{os.getpid()}"  # read by batch_record.session_started
        self._current = threading.local()  # the claim each thread runs, and the rank of the batch it hands over
        self._write = threading.Lock()
        # the order waiting runs take the workers in (claims.workqueue): "left" ranks a claim's batch by the batches
        # ``plan`` (claim → batches it ran last time) says it has left, "done" by the batches it has handed over
        self.order, self.plan = "done", {}
        self._handed: dict[str, int] = {}  # claim → batches handed to the memo in this session

    @property
    def claim(self) -> str:
        """The claim the calling thread runs ("" outside one)."""
        return getattr(self._current, "claim", "")

    @claim.setter
    def claim(self, cid: str) -> None:
        self._current.claim = cid

    def _submit(self, todo: dict, heldout: bool):
        with self._lock:
            if self._pool is None:
                self._pool = RankedPool(worker_pool(self.jobs), self.jobs, lambda: getattr(self._current, "rank", ()))
        return super()._submit(todo, heldout)

    def trained_many(self, cfgs: list, on_run: Callable[[str], None] | None = None, heldout: bool = False
                     ) -> list[dict]:
        from ..train.sweep import finished

        with self._write:
            handed = self._handed.get(self.claim, 0)
            self._handed[self.claim] = handed + 1
        self._current.rank = rank(self.order, handed, max(self.plan.get(self.claim, 0) - handed, 1))
        names = {c.name: finished(c) is not None for c in map(self.resolve, cfgs)}
        todo = sum(not done for done in names.values())
        if todo:
            where = "on the Ray cluster" if self.ray_address is not None else f"{min(self.jobs, todo)} at a time"
            self.report(f"training {todo} run{'s' * (todo > 1)} ({len(names) - todo} reused, {where})")
            self.tick(0, todo)
        t0, done = time.perf_counter(), [0]

        def finished_one(name: str) -> None:
            done[0] += 1
            self.tick(done[0], todo)
            if on_run:
                on_run(name)

        out = super().trained_many(cfgs, on_run=finished_one, heldout=heldout)
        seconds = time.perf_counter() - t0
        if todo:
            self.report(f"trained {todo} run{'s' * (todo > 1)} in {seconds / 60:.1f} min")
        if self.phases is not None:
            with self._write, open(self.phases, "a") as f:
                row = {"session": self.session, "claim": self.claim, "runs": list(names), "trained": todo,
                       "seconds": seconds}
                if self.matmul_gflops is not None:
                    row["matmul_gflops"] = self.matmul_gflops
                f.write(json.dumps(row) + "\n")
        return out


def run_claims(ids: list[str], budget: Budget, out: Path, *, force: bool = False, jobs: int = 1,
               on_start: Callable[[str], None] | None = None,
               on_done: Callable[[ClaimResult], None] | None = None,
               on_runs: Callable[[str, str], None] | None = None, ray_address: str | None = None,
               on_tick: Callable[[str, int, int], None] | None = None,
               measure_rate: Callable[[], float] | None = None) -> list[ClaimResult]:
    """Run (or take from the cache) each claim in ``ids``; rewrite ``out/claims.json`` after every claim.

    The file always holds the whole ledger: claims not run this time keep their cached entries.
    ``jobs``: how many independent trained runs may train at once, each in its own process;
    ``on_runs(claim id, message)``: what a trained claim is training (see :class:`ReportingMemo`);
    ``ray_address``: train the runs as tasks of that Ray cluster (``"local"``: a local instance) instead;
    ``on_tick(claim id, runs done, runs to train)``: as each run of a batch finishes. With ``jobs`` > 1 and no
    Ray cluster the claims that train run side by side (module docstring) and the callbacks come from their
    threads, one at a time. ``measure_rate()``: one core's float32 matmul rate, measured before anything trains
    (and only if a claim will train) and recorded with each batch of runs (``claims.cost`` shares the runs' FLOPs
    over it).
    """
    out.mkdir(parents=True, exist_ok=True)
    said = threading.Lock()  # one callback at a time, whichever thread calls
    memo: ReportingMemo

    def serial(fn):
        def call(*a):
            with said:
                fn(*a)
        return call if fn else None

    report = serial((lambda msg: on_runs(memo.claim, msg)) if on_runs else None)
    tick = serial((lambda done, total: on_tick(memo.claim, done, total)) if on_tick else None)
    # one writer per results folder: a second reproduce into it fails at once, naming the first
    memo = ReportingMemo(out / "runs", jobs=jobs, report=report, ray_address=ray_address, tick=tick,
                         phases=out / PHASES)  # beside the ledger
    # read before this session adds its own batches: the chains the last reproduce into this folder ran
    memo.plan = recorded_batches(out / PHASES)
    memo.order = order_for(memo.plan, [cid for cid in ids if REGISTRY[cid].trains])
    with locked(out), memo as runs:
        start, finish = serial(on_start), serial(on_done)

        def started(cid: str) -> None:
            memo.claim = cid
            if start:
                start(cid)

        side_by_side = jobs > 1 and ray_address is None
        def before_training() -> None:  # before any worker starts or any run trains
            if measure_rate:
                memo.matmul_gflops = measure_rate()

        return _run_all(ids, budget, out, runs, force, started, finish, side_by_side, before_training)


def _run_all(ids: list[str], budget: Budget, out: Path, runs: RunMemo, force: bool,
             on_start: Callable[[str], None], on_done: Callable[[ClaimResult], None] | None,
             side_by_side: bool = False, before_training: Callable[[], None] | None = None) -> list[ClaimResult]:
    """``before_training()`` is called once, before the first claim runs, when a claim that trains is not taken
    from the cache (a ledger whose trained claims are all cached measures nothing)."""
    cache = load_cache(out, budget.name)
    results: dict[str, dict] = dict(cache)
    done: dict[str, ClaimResult] = {}
    written = threading.Lock()
    # Every source hash is read here, in this thread, before a worker starts: the hashes parse the source with
    # ast, and CPython 3.11's AST constructor keeps its recursion depth for the whole interpreter, so two threads
    # parsing at once fail at random with "AST constructor recursion depth mismatch" (python/cpython#106905).
    keys = {cid: claim_key(REGISTRY[cid], budget) for cid in ids}  # cached per module: later calls parse nothing
    if any(REGISTRY[cid].trains for cid in ids):
        trainer_hash()

    def cached(cid: str) -> ClaimResult | None:
        hit = cache.get(cid)
        if force or recorded_status(hit, keys[cid]) != "current":
            return None
        r = ClaimResult(**{f.name: hit[f.name] for f in dataclasses.fields(ClaimResult) if f.name in hit})
        r.cached = True
        return r

    reuse = {cid: cached(cid) for cid in ids}
    if before_training and any(REGISTRY[cid].trains and reuse[cid] is None for cid in ids):
        before_training()

    def one(cid: str) -> ClaimResult:
        on_start(cid)
        return reuse[cid] or run_one(REGISTRY[cid], budget, runs)

    def record(r: ClaimResult) -> None:
        with written:
            results[r.id] = r.to_json()
            done[r.id] = r
            write_json_atomic(out / "claims.json", {"budget": budget.name, "claims": [results[c] for c in REGISTRY
                                                                                     if c in results]})
        if on_done:
            on_done(r)

    side = [cid for cid in ids if side_by_side and REGISTRY[cid].trains and reuse[cid] is None]
    if not side:
        for cid in ids:
            record(one(cid))
        return [done[cid] for cid in ids]
    with ThreadPoolExecutor(len(side), thread_name_prefix="attnlab-claim") as threads:
        futures = [threads.submit(one, cid) for cid in side]
        for cid in ids:  # the others here, while the trained claims wait on the workers
            if cid not in side:
                record(one(cid))
        for f in as_completed(futures):
            record(f.result())
    return [done[cid] for cid in ids]
