"""What a ledger costs: the CPU time of its trained runs, and how long it would take on c CPUs.

``reproduce`` records every batch of trained runs it hands to the memo (``phases.jsonl`` beside
``claims.json``, :class:`~attnlab.claims.runner.ReportingMemo`): the runs of a batch are independent, the
next batch of the same claim waits for it (a pilot's rounds, then every seed). Each run trains on one thread,
and its ``summary.json`` keeps the seconds it took. A claim's row is its time alone on c CPUs: its own work
outside training plus, for each batch, the time c workers take to train that batch's runs (longest first
onto the least loaded worker: within 4/3 of the best schedule). The ledger's total is the schedule
``reproduce --jobs c`` runs (:mod:`attnlab.claims.runner`): the trained claims side by side, each batch
queued on the shared workers as its claim's previous batch ends, the waiting runs taken longest remaining
chain first as a rerun into the same folder takes them (:mod:`attnlab.claims.workqueue`; the total in the
other orders beside it), plus every claim's own work (counted one after another, an upper bound). A run that
an earlier batch trained (one arm shared by two claims) costs nothing the second time. The seconds are this
machine's, measured as the runs trained (beside each other, ``--jobs`` at a time): a faster core scales every number alike.

Beside the seconds, each run's FLOPs counted from below (:mod:`attnlab.train.flops`): given one core's
matmul rate (each ``reproduce`` records one as it begins, and each run counts at the rate of the one that
trained it; where none was recorded, one measured by ``reproduce --cost`` or given), they give the share
of that rate the training ran at and the least time any code could train the same runs in on c such
cores. The gap between that floor and the measured time is all that faster training code can still take
off the ledger. One rate per session cannot follow the
machine over hours, so the runs are also grouped by the session and claim that trained them
(``sessions``): how far a claim's share moved between sessions.

What the cost reads of each run (its seconds and FLOPs) is also kept in a digest beside the ledger
(``runs.jsonl``, :func:`write_digest`), so that the cost survives without the run memo: a ledger copied
without its ``runs`` folder, or one recorded over several machines or sittings whose memo was not kept,
is still costed from what its runs recorded when they finished. A run the memo holds is read from it.
"""

from __future__ import annotations

import heapq
import json
import statistics
from collections.abc import Callable
from pathlib import Path

from ..train.flops import run_flops
from ..train.metrics import read_rows
from .batch_record import PHASES, phases_by_claim, session_started
from .runner import load_cache
from .workqueue import ORDERS, side_by_side

CPUS = (1, 2, 8, 32, 128)
DIGEST = "runs.jsonl"  # beside claims.json: each costed run's seconds and FLOPs (write_digest)


def schedule(seconds: list[float], cpus: int) -> float:
    """Wall time of independent jobs on ``cpus`` workers, longest first onto the least loaded worker."""
    if cpus < 1:
        raise ValueError(f"cpus must be ≥ 1, got {cpus}")
    load = [0.0] * min(cpus, max(1, len(seconds)))
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(load, load[0] + s)
    return max(load)


def _phase_rows(out: Path) -> list[dict]:
    p = Path(out) / PHASES
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist: the ledger in {out} was run before reproduce recorded its "
                                "batches of runs; rerun it (finished runs are reused) to cost it")
    return read_rows(p)


def _trained_by(batches: list[dict]) -> dict[str, dict]:
    """Each run's batch in the ``reproduce`` that first handed it to the memo, which is the one that trained it (a
    later reproduce that reuses it, to decide a claim anew, trains nothing and records no rate): its ``session``
    and the ``matmul_gflops`` that session recorded (absent where it recorded none)."""
    first: dict[str, dict] = {}
    for row in batches:  # in the order the runs were handed to the memo
        for name in row["runs"]:
            first.setdefault(name, row)
    return first


def _by_session(costed: list[tuple[str, str, float, float]], trained_by: dict[str, dict]) -> list[dict]:
    """The costed runs (claim, name, seconds, FLOPs) grouped by the ``reproduce`` that trained them and their claim,
    oldest first: when it began, the rate it recorded and the share of that rate the claim's runs ran at there. A
    claim trained over several sessions shows here how its share moved between them."""
    by: dict[tuple[str, str], dict] = {}
    for cid, name, sec, flops in costed:
        row = trained_by.get(name, {})
        session = row.get("session", "")
        s = by.setdefault((session, cid), {"session": session, "started": session_started(session), "claim": cid,
                                           "matmul_gflops": row.get("matmul_gflops"), "runs": 0,
                                           "cpu_seconds": 0.0, "flops": 0.0})
        s["runs"] += 1
        s["cpu_seconds"] += sec
        s["flops"] += flops
    for s in by.values():
        rate = s["matmul_gflops"]
        s["matmul_share"] = s["flops"] / (rate * 1e9 * s["cpu_seconds"]) if rate and s["cpu_seconds"] else None
    return sorted(by.values(), key=lambda s: s["started"])  # stable: a session's claims stay in ledger order


def _claim_rate(runs: list[tuple[float, float | None]]) -> float | None:
    """The rate a claim's runs trained at, as one number: theirs where they share one, else the rate at which their
    FLOPs take the seconds they take at their own rates (FLOP-weighted harmonic mean); None if a run has none."""
    if any(rate is None for _, rate in runs):
        return None
    rates = {rate for _, rate in runs}
    if len(rates) == 1:
        return rates.pop()
    flops = sum(f for f, _ in runs)
    return flops / sum(f / rate for f, rate in runs) if flops else statistics.median(rates)


def ledger_cost(out: Path, cpus: tuple[int, ...] = CPUS, matmul_gflops: float | None = None,
                measure: Callable[[], float] | None = None) -> dict:
    """Per claim and in total: trained runs, batches, CPU seconds of training, the claim's own seconds outside
    training, the wall seconds on each number of ``cpus`` and the training's FLOPs counted from below (and in
    ``runs``, each costed run's claim, seconds and FLOPs; a run two claims share, under the first); with one
    core's float32 matmul rate, the share of it the training ran at and the floor: the seconds that many FLOPs
    take at that rate on each number of ``cpus``. The rate: ``matmul_gflops`` if given; else the ones recorded as
    the runs began (``recorded``: claim → the rate its runs trained at, each run at the rate of the ``reproduce``
    that trained it), when every costed run has one; else ``measure()`` now, if given."""
    out = Path(out)
    if matmul_gflops is not None and not matmul_gflops > 0:
        raise ValueError(f"matmul_gflops must be a positive rate, got {matmul_gflops}")
    claims = load_cache(out)
    batches_recorded = _phase_rows(out)  # read once: the claims' batches and the rate each run trained at
    phases = phases_by_claim(batches_recorded, {cid: c["finished"] for cid, c in claims.items() if c.get("finished")})
    digest = _digest(out)
    trained_by = _trained_by(batches_recorded)
    seen: set[str] = set()
    costed: list[tuple[str, str, float, float]] = []  # claim, run, seconds, FLOPs
    rows, chains = [], []
    for cid, c in claims.items():
        own = float(c.get("seconds") or 0.0)
        batches, flops = [], 0.0
        for ph in phases.get(cid, []):
            new = [r for r in ph["runs"] if r not in seen]
            seen.update(new)
            done = [_run(out, r, digest) for r in new]
            batches.append([sec for sec, _ in done])
            flops += sum(f for _, f in done)
            costed.extend((cid, r, sec, f) for r, (sec, f) in zip(new, done))
            own -= ph["seconds"]
        own = max(0.0, own)
        chains.append(batches)
        rows.append({"claim": cid, "runs": sum(map(len, batches)), "batches": len(batches),
                     "cpu_seconds": sum(map(sum, batches)), "own_seconds": own, "flops": flops,
                     "wall_seconds": {n: own + sum(schedule(b, n) for b in batches if b) for n in cpus}})
    own_all = sum(r["own_seconds"] for r in rows)
    # the ledger with the waiting runs taken in each order (workqueue.ORDERS): "left" is how a rerun into a folder
    # with a record ranks them (the total), "done" how a first ledger in an empty folder does, "fifo" what ranks save
    by_order = {o: {n: own_all + side_by_side(chains, n, o) for n in cpus} for o in ORDERS}
    total = {"claim": "all", "runs": sum(r["runs"] for r in rows), "batches": sum(r["batches"] for r in rows),
             "cpu_seconds": sum(r["cpu_seconds"] for r in rows), "own_seconds": own_all,
             "flops": sum(r["flops"] for r in rows), "wall_seconds": by_order["left"],
             "wall_seconds_one_by_one": {n: sum(r["wall_seconds"][n] for r in rows) for n in cpus},
             "wall_seconds_by_order": by_order}
    run_rates: dict[str, list[tuple[float, float | None]]] = {}  # claim → (FLOPs, rate it trained at) per run
    for cid, name, _, f in costed:
        run_rates.setdefault(cid, []).append((f, trained_by.get(name, {}).get("matmul_gflops")))
    recorded = {cid: _claim_rate(runs) for cid, runs in run_rates.items()}
    if matmul_gflops is None and recorded and all(recorded.values()):
        rates = recorded
    else:
        recorded = {}
        if matmul_gflops is None and measure is not None:
            matmul_gflops = measure()
        rates = None if matmul_gflops is None else {cid: matmul_gflops for cid in phases}
    if rates is not None:
        seconds_at_rate = {r["claim"]: r["flops"] / (rates[r["claim"]] * 1e9) if r["claim"] in rates else 0.0
                           for r in rows}  # of one core at the claim's matmul rate
        seconds_at_rate["all"] = sum(seconds_at_rate.values())
        for r in [*rows, total]:
            at_rate = seconds_at_rate[r["claim"]]
            r["matmul_share"] = at_rate / r["cpu_seconds"] if r["cpu_seconds"] else None
            r["floor_seconds"] = {n: at_rate / n for n in cpus}
        if recorded:
            matmul_gflops = statistics.median(recorded.values())
    # a claim whose result names trained runs but whose batches this ledger did not record (a result kept from a
    # ledger recorded before batches were, or copied without them): its training is not in the total
    uncosted = [cid for cid, c in claims.items() if cid not in phases and "training" in (c.get("measured") or {})]
    return {"claims": rows, "total": total, "cpus": list(cpus), "matmul_gflops": matmul_gflops, "recorded": recorded,
            "sessions": _by_session(costed, trained_by), "uncosted": uncosted,
            "runs": [{"claim": cid, "run": name, "seconds": sec, "flops": f} for cid, name, sec, f in costed]}


def _held(out: Path, name: str) -> dict | None:
    """A run's seconds and FLOPs from the memo (None where the memo does not hold it finished)."""
    run = out / "runs" / name
    if not ((run / "summary.json").exists() and (run / "config.json").exists()):
        return None
    summary = json.loads((run / "summary.json").read_text())
    return {"run": name, "seconds": float(summary["seconds"]),
            "flops": run_flops(json.loads((run / "config.json").read_text()), summary)["total"]}


def _digest(out: Path) -> dict[str, dict]:
    return {r["run"]: r for r in read_rows(out / DIGEST)}


def write_digest(out: Path) -> int:
    """Write ``runs.jsonl`` beside the ledger: every run its batches name (in any session), from the memo where it
    holds the run, else from the digest already there; the number of runs written. A run neither holds is left
    out (the cost then names it)."""
    out = Path(out)
    old = _digest(out)
    rows = {}
    for ph in _phase_rows(out):  # every session's: the cost reads the one that produced each recorded result
        for name in ph["runs"]:
            if name not in rows and (r := _held(out, name) or old.get(name)) is not None:
                rows[name] = r
    tmp = out / f".{DIGEST}.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    tmp.replace(out / DIGEST)
    return len(rows)


def _run(out: Path, name: str, digest: dict[str, dict]) -> tuple[float, float]:
    """A finished run's seconds and its FLOPs counted from below: from the memo, else from the digest."""
    r = _held(out, name) or digest.get(name)
    if r is None:
        raise FileNotFoundError(f"{out / 'runs' / name} does not exist and {out / DIGEST} does not list it: "
                                "phases.jsonl names a run the memo does not hold")
    return float(r["seconds"]), float(r["flops"])


def cost_markdown(cost: dict, budget: str) -> str:
    """The cost as a table: the trained claims, then the ledger, minutes throughout."""
    m = lambda s: f"{s / 60:.1f}"  # noqa: E731
    rate = cost.get("matmul_gflops")
    extra = ["useful TFLOP (at least)"] + (["% of matmul rate"] if rate else [])
    head = ("| claim | trained runs | batches | CPU min of training | min outside training | "
            + " | ".join(f"min on {n} CPU{'s' * (n > 1)}" for n in cost["cpus"]) + " | " + " | ".join(extra) + " |")
    lines = [head, "|" + "---|" * (5 + len(cost["cpus"]) + len(extra))]
    for r in [*[r for r in cost["claims"] if r["runs"]], cost["total"]]:
        bold = (lambda x: f"**{x}**") if r["claim"] == "all" else str  # noqa: E731
        cells = [f"{r['flops'] / 1e12:.1f}"]
        if rate:
            cells.append(f"{100 * r['matmul_share']:.0f}%" if r["matmul_share"] is not None else "")
        lines.append(f"| {bold(r['claim'])} | {r['runs']} | {r['batches']} | {m(r['cpu_seconds'])} | "
                     f"{m(r['own_seconds'])} | " + " | ".join(bold(m(r["wall_seconds"][n])) for n in cost["cpus"])
                     + " | " + " | ".join(cells) + " |")
    t = cost["total"]
    floor = ""
    if rate:
        recorded = sorted(set(cost.get("recorded", {}).values()))
        how = ("measured as the table was made, or given" if not recorded else
               "recorded as the runs began" if len(recorded) == 1 else
               f"the median of the rates each claim's `reproduce` recorded as its runs began, {recorded[0]:.1f} to "
               f"{recorded[-1]:.1f}; each claim's share is of its own")
        floor = (f" At one core's float32 matmul rate ({rate:.1f} GFLOP/s: {how}), "
                 f"those FLOPs alone take " + ", ".join(f"{m(t['floor_seconds'][n])} min on {n} CPU{'s' * (n > 1)}"
                                                        for n in cost["cpus"])
                 + ": no code trains these runs faster on such cores.")
    if cost.get("uncosted"):
        floor += (" Not costed here, as their batches of runs were not recorded with their results: "
                  + ", ".join(cost["uncosted"]) + ".")
    return (f"_{budget} budget: {t['runs']} trained runs in {t['batches']} batches, "
            f"{t['cpu_seconds'] / 3600:.2f} CPU-hours of training; the untrained claims and each claim's work "
            f"outside training run on one machine ({m(t['own_seconds'])} min). A claim's row is its time alone; "
            "the ledger's runs its trained claims side by side on the shared workers (`reproduce --jobs`), so its "
            "total is less than the sum of the rows. Useful TFLOP: the training's arithmetic counted from below "
            f"(`attnlab.train.flops`).{_orders_sentence(cost)}{floor}_\n\n" + "\n".join(lines) + "\n"
            + _sessions_markdown(cost.get("sessions", [])))


def _orders_sentence(cost: dict) -> str:
    """What the ledger would take with its waiting runs in the other orders (``claims.workqueue``)."""
    by = cost["total"].get("wall_seconds_by_order")
    if not by:
        return ""
    at = lambda order: " / ".join(f"{s / 60:.1f}" for s in by[order].values())  # noqa: E731
    cpus = " / ".join(str(n) for n in cost["cpus"])
    return (f" The ledger's total takes the waiting runs longest remaining chain first, as a rerun into this folder "
            f"does; on {cpus} CPUs it would take {at('fifo')} min with the runs taken in the order they were "
            f"queued, and {at('done')} min ranked by the batches each claim has already run, as a first ledger in an "
            "empty folder is.")


def _sessions_markdown(sessions: list[dict]) -> str:
    """The runs by the ``reproduce`` that trained them, when there was more than one with a recorded rate."""
    if len({s["session"] for s in sessions if s["matmul_gflops"] is not None}) < 2:
        return ""
    lines = ["| reproduce began (UTC) | its matmul rate (GFLOP/s) | claim | trained runs | CPU min of training | "
             "useful TFLOP (at least) | % of its matmul rate |", "|---|---|---|---|---|---|---|"]
    for s in sessions:
        rate, share = s["matmul_gflops"], s["matmul_share"]
        lines.append(f"| {s['started'][:16].replace('T', ' ') or 'unknown'} | {f'{rate:.1f}' if rate else ''} | "
                     f"{s['claim']} | {s['runs']} | {s['cpu_seconds'] / 60:.1f} | {s['flops'] / 1e12:.1f} | "
                     f"{f'{100 * share:.0f}%' if share is not None else ''} |")
    return ("\n_By the `reproduce` that trained them: this ledger's runs trained in several sessions, each of which "
            "measured one core's matmul rate once, as it began. A claim's runs in one session are of other kinds "
            "than in another (pilots, seeds, reported arms), and the machine's speed moves over hours and with "
            "other work beside the runs, which one rate per session cannot follow: the rows say how far a "
            "claim's share moved between sessions._\n\n" + "\n".join(lines) + "\n")
